"""What the schematics engine tells Ephemera (see :mod:`ephemera.engines.spec`).

It reads ``schematics`` and the shared IBM account section ``ibm``; its settings
(workspace id, API key, service URL) are checked when a config using it loads. One
Schematics workspace (``schematics.workspace_id``) backs exactly one Ephemera
workspace, so a config drives only its own ``workspace.name``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ephemera.engines.schematics.config import SchematicsSection, SchematicsSettings
from ephemera.engines.spec import EngineSpec
from ephemera.errors import ParamError
from ephemera.ibm import IBMAccount


class SchematicsSpec(EngineSpec):
    name = "schematics"
    sections = {"schematics": SchematicsSection, "ibm": IBMAccount}
    engine_class = "ephemera.engines.schematics.engine:SchematicsEngine"
    one_workspace_per_config = True
    action_extras = ("ibm",)  # the Schematics SDK

    def check(self, config) -> SchematicsSettings:
        return SchematicsSettings.from_config(config)

    def workspace_engine(
        self, config, *, stack_dir: Path, workspace, workspace_id, workspaces_dir, state_suffix, field="workspace_id"
    ):
        """The existing Schematics workspace ``workspace_id`` (the engine cannot create one: the
        operator makes it from ``stack_dir``), with the config's Schematics settings and none of
        the run workspace's secure variables (they are not this workspace's)."""
        if not workspace_id:
            raise ParamError(
                field,
                f"names no Schematics workspace for '{workspace}'",
                f"create one from terraform/{Path(stack_dir).name} and give its id",
            )
        from ephemera.engines.schematics.engine import SchematicsEngine  # lazy: the Schematics SDK

        settings = dataclasses.replace(SchematicsSettings.from_config(config), workspace_id=workspace_id, secure_variables={})
        return SchematicsEngine(settings, workspace)

    def vm_region(self, config) -> str:
        return config.section(SchematicsSection).region
