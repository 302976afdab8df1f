"""Compute backends of the bridge: one folder each, loaded by name from ``BACKENDS``.

A backend is built with the executor's full (Lithops-shaped) config and the bridge
storage config, and offers ``submit(job, futures)`` (asynchronous: it resolves the
futures as results arrive) and ``close()``.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from lithops_bridge.errors import ConfigError

# backend name (lithops.backend) -> "module:Class"; imported only when chosen
BACKENDS: dict[str, str] = {
    "localhost": "lithops_bridge.backends.localhost.backend:LocalhostBackend",
    "standalone": "lithops_bridge.backends.standalone.backend:StandaloneBackend",
}


class ComputeBackend(Protocol):
    name: str  # the registry name

    def submit(self, job: Any, futures: list) -> None:
        """Start the job's calls; resolve ``futures`` (one per call) as they finish."""

    def capacity(self) -> int:
        """How many calls run at once (Lithops' ``cpu_count``)."""

    def close(self) -> None:
        """Release what this executor holds (shared warm pools stay up)."""


def get_backend(name: str, config: dict, storage_config: dict) -> ComputeBackend:
    if name not in BACKENDS:
        raise ConfigError("lithops.backend", f"unknown compute backend '{name}'", f"use one of: {', '.join(BACKENDS)}")
    module_name, _, cls_name = BACKENDS[name].partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(config, storage_config)
