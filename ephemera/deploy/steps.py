"""Deploy plans as idempotent steps, printed with ``--dry-run`` or run one by one.

A :class:`Step` is one thing that should exist. It is either a single create-or-update
command (OpenWhisk ``update`` verbs), or a probe (``get``) followed by the update
command when the probe succeeds and the create command when it fails.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass, field
from typing import Callable, Iterable, TextIO


@dataclass(frozen=True)
class Step:
    what: str  # what the step makes exist, in words
    create: list[str]  # the command that creates it (or creates-or-updates it when probe is empty)
    probe: list[str] = field(default_factory=list)  # a command that succeeds when it already exists
    update: list[str] = field(default_factory=list)  # run instead of create when the probe succeeds
    recreate: bool = False  # when it exists: delete (update) then create, for things that cannot be updated

    def commands(self) -> list[list[str]]:
        """Every command this step may run, in the order they could run."""
        return [c for c in (self.probe, self.update, self.create) if c]


def render(steps: Iterable[Step]) -> list[str]:
    """The printed plan: every command of every step, shell-quoted, with its condition."""
    lines: list[str] = []
    for step in steps:
        lines.append(f"# {step.what}")
        if step.probe:
            lines.append(shlex.join(step.probe) + " >/dev/null 2>&1 && \\")
            if step.recreate:
                lines.append("  " + shlex.join(step.update) + " ; \\")
                lines.append("  " + shlex.join(step.create))
            else:
                lines.append("  " + shlex.join(step.update) + " || \\")
                lines.append("  " + shlex.join(step.create))
        else:
            lines.append(shlex.join(step.create))
    return lines


def run(steps: Iterable[Step], out: TextIO, runner: Callable[[list[str]], int] | None = None) -> int:
    """Run the steps in order; stop at the first failing command and return its exit code."""
    runner = runner or (lambda cmd: subprocess.run(cmd, check=False).returncode)
    for step in steps:
        print(f"# {step.what}", file=out)
        todo = [step.create]
        if step.probe:
            exists = runner(step.probe) == 0
            if exists:
                todo = [step.update, step.create] if step.recreate else [step.update]
        for cmd in todo:
            print(shlex.join(cmd), file=out)
            code = runner(cmd)
            if code != 0:
                print(f"failed with exit code {code}: {shlex.join(cmd)}", file=out)
                return code
    return 0
