"""What the terraform engine tells Ephemera (see :mod:`ephemera.engines.spec`).

Its state lives on the machine that applies, and so do the actions that use it: a
config choosing it is checked at load on that machine, before anything is created:
``workspace.stack`` must be a stack with ``.tf`` files and a spec, ``terraform.binary``
must run (``<binary> version``), ``workspace.variables`` may name only variables the
stack takes from the user, and ``worker_count`` must be within the bound its spec states.
"""

from __future__ import annotations

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

    def check(self, config) -> None:
        from ephemera.engines.terraform.checks import (
            check_settings,
        )  # cold start: spec modules load with every config, this only when used

        check_settings(config)
