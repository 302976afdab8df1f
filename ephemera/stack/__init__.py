"""Stacks: the third plugin kind. A stack is a folder of ``.tf`` files with a ``stack.toml``
(:mod:`ephemera.stack.spec`) and one line in :data:`STACKS`.

The shipped stacks live in the repository's ``terraform/`` folder, installed as the
package data ``ephemera.stacks`` (pyproject.toml maps it): :data:`STACKS_DIR` finds
them in either place. ``workspace.stack`` is a registered name or a folder path; either
way the folder must hold a ``stack.toml``. Engines, plan, cost, the run's variables and
``ephemera lithops-config`` ask :func:`stack_spec` instead of reading ``.tf`` files.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from ephemera.errors import ConfigError
from ephemera.plugins import load_spec
from ephemera.stack.hooks import StackHooks
from ephemera.stack.spec import SPEC_FILE, StackSpec, load_spec_file

if TYPE_CHECKING:
    from ephemera.config import Config

_PACKAGE = Path(__file__).resolve().parents[1]  # the ephemera package's folder


def _shipped_stacks() -> Path:
    """``ephemera/stacks`` in a wheel or sdist install, the repository's ``terraform/`` in a checkout."""
    installed = _PACKAGE / "stacks"
    return installed if installed.is_dir() else _PACKAGE.parent / "terraform"


STACKS_DIR = _shipped_stacks()

# registry name -> its folder (relative to STACKS_DIR, or absolute); the folder holds stack.toml
STACKS: dict[str, str] = {
    "local": "local",
    "ibm-vpc-gpu": "ibm-vpc-gpu",
    "aws-ec2-gpu": "aws-ec2-gpu",
    "aws-image-builder": "aws-image-builder",  # builds prepared images (issue 20), not runs
    "ibm-image-builder": "ibm-image-builder",  # ditto
}


def stack_folder(stack: str, field: str = "workspace.stack") -> tuple[str, Path]:
    """(name, folder) of a registered stack or a folder path; ConfigError naming ``field``.
    A deployed action's package carries only the stacks' specs (the engine has the .tf files)."""
    if stack in STACKS:
        name, path = stack, STACKS_DIR / STACKS[stack]
    else:
        path = Path(stack).expanduser()
        name = path.name
    if not path.is_dir() or not (any(path.glob("*.tf")) or (path / SPEC_FILE).is_file()):
        raise ConfigError(
            field,
            f"'{stack}' is neither a registered stack nor a folder with .tf files or a stack.toml",
            f"use one of {', '.join(STACKS)} or a path",
        )
    return name, path.resolve()


def stack_spec(stack: str, field: str = "workspace.stack") -> StackSpec:
    """The spec of ``stack`` (a registered name or a folder); re-read when its stack.toml changes."""
    name, folder = stack_folder(stack, field)
    spec_path = folder / SPEC_FILE
    return _cached(name, folder, spec_path.stat().st_mtime_ns if spec_path.exists() else 0)


@lru_cache(maxsize=32)
def _cached(name: str, folder: Path, mtime: int) -> StackSpec:  # noqa: ARG001 - mtime keys the cache
    return load_spec_file(name, folder)


def registered_stacks() -> list[StackSpec]:
    """The spec of every registered stack whose folder is here, in registry order."""
    found = []
    for name in STACKS:
        try:
            found.append(stack_spec(name))
        except ConfigError:  # a registered stack not shipped in this install: nothing to read
            continue
    return found


def config_stack(config: Config) -> StackSpec:
    """The spec of the config's ``workspace.stack``."""
    return stack_spec(config.workspace.stack)


def check_user_variables(spec: StackSpec, variables: dict) -> None:
    """ConfigError naming ``workspace.variables.<name>`` for a variable the stack does not take
    from the user: one it does not declare (a typo) or one Ephemera or the engine sets."""
    for name in variables:
        var = spec.variables.get(name)
        if var is None:
            takes = sorted(spec.setters("user"))
            raise ConfigError(
                f"workspace.variables.{name}",
                f"the stack '{spec.name}' has no variable '{name}'",
                f"use one of: {', '.join(takes)}",
            )
        if var.set_by != "user":
            raise ConfigError(
                f"workspace.variables.{name}",
                f"set by {'Ephemera for each run' if var.set_by == 'ephemera' else 'the engine'}",
                "remove it from workspace.variables",
            )


def check_run_variables(spec: StackSpec, values: dict) -> None:
    """ConfigError before anything is applied when a variable the stack needs from Ephemera
    (``set_by = "ephemera"``, no default) is not among the run's ``values``: the spec and
    this Ephemera disagree on what a run provides (e.g. a stack written for another storage)."""
    missing = sorted(v.name for v in spec.variables.values() if v.set_by == "ephemera" and v.required and v.name not in values)
    if missing:
        raise ConfigError(
            "workspace.stack",
            f"the stack '{spec.name}' needs {', '.join(missing)} from Ephemera, which this run does not provide",
            "mark them set_by = \"user\" in its stack.toml and set them in workspace.variables, or give them a default",
        )


def check_vm_access(spec: StackSpec, backend: str, identity: dict | None) -> None:
    """ConfigError when the run's VMs could not reach the storage: a backend the stack's VMs
    cannot reach, or a VM identity kind the stack cannot give its VMs (on this machine, VMs
    need none of either: they are processes of the controller's user)."""
    if spec.storage_backends and backend not in spec.storage_backends:
        raise ConfigError(
            "storage.backend",
            f"'{backend}': the stack '{spec.name}' has VMs that reach only {', '.join(spec.storage_backends)}",
            "use that storage, or another workspace.stack",
        )
    kind = (identity or {}).get("kind")
    if kind and not spec.vms_on_host and kind not in spec.vm_identities:
        raise ConfigError(
            "workspace.stack",
            f"the storage gives the run's VMs an identity of kind '{kind}', which the "
            f"stack '{spec.name}' cannot give its VMs ({', '.join(spec.vm_identities) or 'it gives none'})",
            "use a stack that can, or storage credentials the VMs receive once (the storage's own settings)",
        )


def stack_hooks(spec: StackSpec) -> StackHooks:
    """The hooks object of a stack: its ``hooks`` class, or the defaults."""
    return load_spec(spec.hooks) if spec.hooks else StackHooks()


__all__ = [
    "STACKS",
    "STACKS_DIR",
    "StackSpec",
    "check_run_variables",
    "check_user_variables",
    "check_vm_access",
    "config_stack",
    "registered_stacks",
    "stack_folder",
    "stack_hooks",
    "stack_spec",
]
