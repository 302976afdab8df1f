"""What a workspace engine tells the rest of Ephemera, besides its engine interface.

An engine is a folder ``ephemera/engines/<name>/`` whose ``spec.py`` subclasses
:class:`EngineSpec`, plus one line in the registry (:data:`ephemera.engines.ENGINES`):
the config sections it reads (pydantic models the config loader collects), the
settings checks run at load time when it is the chosen engine, how to build it (its
module is imported, with its SDK, only then), and the questions other code asks of
it (may one config drive several workspaces? which region do its VMs live in? which engine
drives a workspace of another stack, such as an image build's?).
The spec module must not import a cloud SDK: it is imported whenever a config loads.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from ephemera.config import Config
    from ephemera.engines.base import WorkspaceEngine
    from ephemera.sections import Section


class EngineSpec:
    """The defaults suit an engine that drives any number of workspaces from one config."""

    name: str = ""  # registry name: the value of engine.backend and the name of its config section
    sections: Mapping[str, type[Section]] = {}  # config sections it reads, by top-level key (its own first)
    engine_class: str = ""  # "module:Class" of the engine; the class has ``from_config(config)``
    one_workspace_per_config: bool = False  # True: the config's workspace.name is the only workspace it can apply
    state_on_host: bool = False  # True: its state lives on the machine that applies (so no cloud action can run it)
    action_extras: tuple[str, ...] = ()  # Ephemera extras a deployed action installs to drive this engine

    def check(self, config: Config) -> Any:
        """Settings checks of a loaded config using this engine; raise ConfigError naming the key."""
        return None

    def build(self, config: Config) -> Any:
        """The engine for a loaded config."""
        module_name, _, cls_name = self.engine_class.partition(":")
        return getattr(importlib.import_module(module_name), cls_name).from_config(config)

    def workspace_engine(
        self,
        config: Config,
        *,
        stack_dir: Path,
        workspace: str,
        workspace_id: str | None,
        workspaces_dir: Path,
        state_suffix: str,
        field: str = "workspace_id",
    ) -> WorkspaceEngine:
        """An engine for ``workspace``, made from the stack in ``stack_dir`` rather than the
        config's: the config's engine settings, with its working directories under
        ``workspaces_dir`` and its state apart (``state_suffix``), or the engine's existing
        workspace ``workspace_id`` (``field`` names where that id comes from, for the error
        when the engine needs one and none is given: a ParamError)."""
        raise NotImplementedError(f"the {self.name} engine cannot drive a workspace of another stack")

    def vm_region(self, config: Config) -> str | None:
        """The cloud region the engine builds VMs in, when the engine itself knows it."""
        return None

    def state_in_bucket(self, config: Config) -> bool:
        """Whether this config keeps an on-host engine's state in a bucket (so an action with a
        throwaway working directory can run it, where the platform carries the engine's tools)."""
        return False

    def vms_on_host(self, config: Config) -> bool:
        """Whether the VMs it builds for this config are processes on the controller's machine
        (the local stack): only those may be handed what the controller itself holds."""
        return False

    def __repr__(self) -> str:
        return f"<workspace engine {self.name}>"
