"""Fakes of cloud services that tests start on 127.0.0.1."""
