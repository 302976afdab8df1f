"""Workspace engines: one folder per engine, an explicit registry, lazy imports; the
interface and the optional capabilities are in :mod:`ephemera.engines.base`."""

from __future__ import annotations

import importlib

from ephemera.config import Config, ConfigError, load_config
from ephemera.engines.base import OrphanSweeper, WorkspaceEngine

ENGINES: dict[str, str] = {
    "terraform": "ephemera.engines.terraform.engine:TerraformEngine",
    "schematics": "ephemera.engines.schematics.engine:SchematicsEngine",
}


def get_engine(config: Config | dict | str | None) -> WorkspaceEngine:
    config = load_config(config)
    name = config["engine"]["backend"]
    if name not in ENGINES:
        raise ConfigError("engine.backend", f"unknown engine '{name}'", f"use one of {', '.join(ENGINES)}")
    module_name, _, cls_name = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module_name), cls_name).from_config(config)


__all__ = ["ENGINES", "OrphanSweeper", "WorkspaceEngine", "get_engine"]
