"""Workspace engines: one folder per engine, an explicit registry, lazy imports.

Adding an engine is a folder ``ephemera/engines/<name>/`` (its ``spec.py`` subclasses
:class:`~ephemera.engines.spec.EngineSpec`) and one line in :data:`ENGINES`.
"""

from __future__ import annotations

import importlib
from functools import cache

from ephemera.engines.base import WorkspaceEngine
from ephemera.engines.spec import EngineSpec
from ephemera.errors import ConfigError

# registry name -> "module:Spec class"; the spec modules import no SDK
ENGINES: dict[str, str] = {
    "terraform": "ephemera.engines.terraform.spec:TerraformSpec",
    "schematics": "ephemera.engines.schematics.spec:SchematicsSpec",
}
DEFAULT_ENGINE = "terraform"  # the value of engine.backend when the config names none


@cache
def _load(path: str) -> EngineSpec:
    module_name, _, cls_name = path.partition(":")
    return getattr(importlib.import_module(module_name), cls_name)()


def engine_spec(name: str) -> EngineSpec:
    """The spec of a registered engine; ConfigError naming engine.backend for an unknown name."""
    if not isinstance(name, str) or name not in ENGINES:
        raise ConfigError("engine.backend", f"unknown engine '{name}'", f"use one of {', '.join(ENGINES)}")
    return _load(ENGINES[name])


def engine_specs() -> list[EngineSpec]:
    """Every registered engine's spec, in registry order."""
    return [_load(path) for path in ENGINES.values()]


def get_engine(config) -> WorkspaceEngine:
    """The engine of a :class:`~ephemera.config.Config` (or a config source)."""
    from ephemera.config import load_config

    config = load_config(config)
    return engine_spec(config["engine"]["backend"]).build(config)


__all__ = ["DEFAULT_ENGINE", "ENGINES", "EngineSpec", "WorkspaceEngine", "engine_spec", "engine_specs", "get_engine"]
