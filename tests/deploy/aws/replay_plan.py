"""Run a ``plan.sh`` of ``ephemera deploy aws`` with the aws CLI's own driver, in one process.

Started with the interpreter the ``aws`` command runs on (``python replay_plan.py
plan.sh``): every ``aws ...`` command of the script is parsed and run by
``awscli.clidriver`` exactly as the ``aws`` command would run it, without paying the
CLI's start-up for each of the plan's ~100 commands. Each command gets a driver and a session
of its own, as an ``aws`` process would; only botocore's data loader (the service models and
endpoint files it reads from disk, read-only and cached per loader) is shared, since parsing
those files again for every command was most of the replay's time. The script's shell forms are the
ones :func:`ephemera.deploy.steps.render` writes -- ``probe >/dev/null 2>&1 && update ||
create`` and single commands -- evaluated as bash does under ``set -e``; anything else
is refused. Exits with the first failing line's code.
"""

from __future__ import annotations

import io
import shlex
import sys
from contextlib import redirect_stderr, redirect_stdout


def logical_lines(text: str) -> list[str]:
    lines, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("set "):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        lines.append(current + line)
        current = ""
    return lines


def main(path: str) -> int:
    from awscli.clidriver import create_clidriver

    loaders: list = []  # the first session's data loader, given to every later session

    def driver():
        made = create_clidriver()
        if loaders:
            made.session.register_component("data_loader", loaders[0])
        else:
            loaders.append(made.session.get_component("data_loader"))
        return made

    def aws(args: list[str], quiet: bool) -> int:
        if not args or args[0] != "aws":
            raise SystemExit(f"not an aws command: {args}")
        sink = io.StringIO()
        if quiet:
            with redirect_stdout(sink), redirect_stderr(sink):
                return driver().main(args[1:])
        with redirect_stdout(sink):
            code = driver().main(args[1:])
        return code

    for line in logical_lines(open(path).read()):
        quiet_first = ">/dev/null 2>&1" in line
        words = shlex.split(line.replace(">/dev/null 2>&1", ""))
        parts, ops, cur = [], [], []
        for w in words:
            if w in ("&&", "||"):
                parts.append(cur)
                ops.append(w)
                cur = []
            else:
                cur.append(w)
        parts.append(cur)
        code = aws(parts[0], quiet_first)
        for op, cmd in zip(ops, parts[1:]):
            if (op == "&&" and code == 0) or (op == "||" and code != 0):
                code = aws(cmd, False)
        if code != 0:
            print(f"failed ({code}): {line}", file=sys.stderr)
            return code
        print(f"ok: {line[:120]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
