"""What the schematics engine tells Ephemera (see :mod:`ephemera.engines.spec`).

It reads ``schematics`` and the shared IBM account section ``ibm``; its settings
(workspace id, API key, service URL) are checked when a config using it loads. One
Schematics workspace (``schematics.workspace_id``) backs exactly one Ephemera
workspace, so a config drives only its own ``workspace.name``.
"""

from __future__ import annotations

from ephemera.engines.schematics.config import SchematicsSection, SchematicsSettings
from ephemera.engines.spec import EngineSpec
from ephemera.ibm import IBMAccount


class SchematicsSpec(EngineSpec):
    name = "schematics"
    sections = {"schematics": SchematicsSection, "ibm": IBMAccount}
    engine_class = "ephemera.engines.schematics.engine:SchematicsEngine"
    one_workspace_per_config = True
    action_extras = ("ibm",)  # the Schematics SDK

    def check(self, config) -> SchematicsSettings:
        return SchematicsSettings.from_config(config)

    def vm_region(self, config) -> str:
        return config.section(SchematicsSection).region
