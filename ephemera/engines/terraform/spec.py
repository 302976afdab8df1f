"""What the terraform engine tells Ephemera (see :mod:`ephemera.engines.spec`).

Its stack and binary are resolved when the engine is built, on the machine that
applies (an action host may not have the stack folder a config names).
"""

from __future__ import annotations

from ephemera.engines.spec import EngineSpec
from ephemera.engines.terraform.config import TerraformSection


class TerraformSpec(EngineSpec):
    name = "terraform"
    sections = {"terraform": TerraformSection}
    engine_class = "ephemera.engines.terraform.engine:TerraformEngine"
    state_on_host = True  # state files and stacks in the Ephemera home of the machine that applies
