"""What the terraform engine tells Ephemera (see :mod:`ephemera.engines.spec`).

Its state lives on the machine that applies, and so do the actions that use it: a
config choosing it is checked at load on that machine, before anything is created:
``workspace.stack`` must be a stack with ``.tf`` files and a spec, ``terraform.binary``
must run (``<binary> version``), ``workspace.variables`` may name only variables the
stack takes from the user, and ``worker_count`` must be within the bound its spec states.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ephemera.engines.spec import EngineSpec
from ephemera.engines.terraform.config import TerraformSection


class TerraformSpec(EngineSpec):
    name = "terraform"
    sections = {"terraform": TerraformSection}
    engine_class = "ephemera.engines.terraform.engine:TerraformEngine"
    state_on_host = True  # state files and stacks in the Ephemera home of the machine that applies

    def vms_on_host(self, config) -> bool:
        from ephemera.stack import config_stack  # cold start: spec modules load with every config, this only when used

        return config_stack(config).vms_on_host

    def state_in_bucket(self, config) -> bool:
        from ephemera.engines.terraform.config import (
            TerraformSection,
        )  # cold start: spec modules load with every config, this only when used

        return config.section(TerraformSection).state.backend == "s3"

    def workspace_engine(self, config, *, stack_dir: Path, workspace, workspace_id, workspaces_dir: Path, state_suffix, field=""):
        """A working directory under ``workspaces_dir`` per workspace (the id is not used: the
        workspace name is the directory); S3 state under ``<prefix><state_suffix>``."""
        from ephemera.engines.terraform.config import engine_config  # cold start: only when used
        from ephemera.engines.terraform.engine import TerraformEngine  # ditto
        from ephemera.stack import stack_spec  # ditto

        base = engine_config(config)
        state = base.state and dataclasses.replace(base.state, prefix=f"{base.state.prefix}{state_suffix}")
        settings = dataclasses.replace(base, stack=stack_spec(str(stack_dir)), workspaces_dir=workspaces_dir, state=state)
        return TerraformEngine(config, settings)

    def check(self, config) -> None:
        from ephemera.engines.terraform.checks import (
            check_settings,
        )  # cold start: spec modules load with every config, this only when used

        check_settings(config)
