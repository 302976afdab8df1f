"""Ephemera test suite."""
