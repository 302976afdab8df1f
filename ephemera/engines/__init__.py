"""Workspace engines: one folder per engine, an explicit registry, lazy imports.

Adding an engine is a folder ``ephemera/engines/<name>/`` (its ``spec.py`` subclasses
:class:`~ephemera.engines.spec.EngineSpec`) and one line in :data:`ENGINES`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ephemera.engines.base import ActivityLogs, OrphanSweeper, Planner, WorkspaceEngine
from ephemera.engines.spec import EngineSpec
from ephemera.plugins import load_spec, registered

if TYPE_CHECKING:
    from ephemera.config import Config

# registry name -> "module:Spec class"; the spec modules import no SDK
ENGINES: dict[str, str] = {
    "terraform": "ephemera.engines.terraform.spec:TerraformSpec",
    "schematics": "ephemera.engines.schematics.spec:SchematicsSpec",
}
DEFAULT_ENGINE = "terraform"  # the value of engine.backend when the config names none


def engine_spec(name: str) -> EngineSpec:
    """The spec of a registered engine; ConfigError naming engine.backend for an unknown name."""
    return registered(ENGINES, name, "engine.backend", "engine")


def engine_specs() -> list[EngineSpec]:
    """Every registered engine's spec, in registry order."""
    return [load_spec(path) for path in ENGINES.values()]


def get_engine(config: Config) -> WorkspaceEngine:
    """The engine of a parsed :class:`~ephemera.config.Config`
    (:func:`ephemera.assembly.get_engine` parses a config source first)."""
    return engine_spec(config.engine.backend).build(config)


__all__ = [
    "ActivityLogs",
    "DEFAULT_ENGINE",
    "ENGINES",
    "EngineSpec",
    "OrphanSweeper",
    "Planner",
    "WorkspaceEngine",
    "engine_spec",
    "engine_specs",
    "get_engine",
]
