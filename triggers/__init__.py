"""Triggers: event parsing for every delivery format, and the local event runtime."""
