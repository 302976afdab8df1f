"""The ``localhost`` section: ``worker_processes`` (default: the CPU count)."""

from __future__ import annotations

import os

from lithops_bridge import constants as c
from lithops_bridge.errors import ConfigError


def worker_count(field: str, value) -> int:
    """A positive process count from an int, a numeric string, or 'AUTO'/None."""
    if value is None or (isinstance(value, str) and value.upper() == "AUTO"):
        return os.cpu_count() or 1
    try:
        n = int(value)
        if isinstance(value, bool) or n < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(field, f"expected a positive integer or 'AUTO', got {value!r}", "e.g. worker_processes: 4") from None
    return n


def load_config(config: dict) -> dict:
    """The effective localhost settings of a full bridge config."""
    section = dict(config.get(c.LOCALHOST) or {})  # the compute backend's section (Lithops shares the name with storage)
    return {"worker_processes": worker_count("localhost.worker_processes", section.get("worker_processes"))}
