"""``ephemera logs RUN_ID``: one interleaved, timestamped view of everything a run logged.

Lines come from the action invocations that name the run (the local runtime's
activation records: start, log lines, end), the engine's job logs and each VM's
``boot``, ``agent`` and ``workload`` logs (chunks shipped to the state bucket, see
:mod:`ephemera.model.logs`), so they are there after the VMs are gone. ``--follow``
prints new lines as they arrive and stops once the run is DESTROYED.

By default it prints the user's own lines: the workload's and the agent's. The
action, engine and boot lines (Terraform, pip, cloud-init) are one flag away:
``--all``, or ``--source`` for exactly the sources named; a note at the end says how
many lines the default left out.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta
from typing import Callable, Iterable

from ephemera.cli.activations import result_summary
from ephemera.cli.results import workload_traceback
from ephemera.cli.tables import visible
from ephemera.config.fields import duration_seconds
from ephemera.context import Context
from ephemera.errors import ParamError
from ephemera.model.logs import SOURCES, LogLine, read_logs, split_time
from ephemera.model.runs import RunState
from ephemera.sections import Invalid
from ephemera.timeutil import now_utc, parse_time
from ephemera.runtime.activations import Activation, new_activations

FOLLOW_INTERVAL = 1.0  # seconds between polls with --follow
DEFAULT_SOURCES = ("agent", "workload")  # what `ephemera logs` prints without --all or --source


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id")
    p.add_argument("--follow", "-f", action="store_true", help="print new lines as they come; stop when the run is DESTROYED")
    p.add_argument("--worker", type=int, help="only this VM's lines (and the run's action and engine lines)")
    p.add_argument("--all", "-a", action="store_true", help="every source: also the action, engine and boot lines")
    p.add_argument(
        "--source",
        action="append",
        choices=SOURCES,
        help=f"only these sources (repeatable; default: {' and '.join(DEFAULT_SOURCES)})",
    )
    p.add_argument("--since", help="only lines after this: a duration back from now (90s, 30m, 2h) or an ISO time")


def since_time(text: str | None) -> datetime | None:
    """``--since``: a duration back from now, or an ISO 8601 time."""
    if not text:
        return None
    try:
        return now_utc() - timedelta(seconds=duration_seconds(text))
    except Invalid:
        return parse_time("--since", text, error=ParamError)


def names_run(activation: Activation, run_id: str) -> bool:
    result, event = activation.result or {}, activation.event or {}
    return run_id in (result.get("run_id"), event.get("run_id"), (event.get("params") or {}).get("run_id"))


def action_lines(activations: Iterable[Activation], run_id: str) -> list[LogLine]:
    """Each invocation that names the run: its start, its log lines, its end."""
    out = []
    for a in activations:
        if not names_run(a, run_id):
            continue
        out.append(
            LogLine(
                a.start, "action", f"{a.action} started (activation {a.activationId}, trigger {a.trigger})", None, a.activationId
            )
        )
        last = a.start
        for raw in a.logs:
            at, text = split_time(raw)
            last = at or last
            out.append(LogLine(last, "action", f"{a.action}: {text}", None, a.activationId))
        out.append(
            LogLine(
                a.end,
                "action",
                f"{a.action} ended {a.status} in {a.duration_ms / 1000:.2f}s: {result_summary(a, 120)}",
                None,
                a.activationId,
            )
        )
    return out


class RunLogs:
    """The run's lines, read incrementally (chunks and activations already seen are skipped)."""

    def __init__(
        self,
        ctx: Context,
        run_id: str,
        worker: int | None = None,
        sources: list[str] | None = None,
        since: datetime | None = None,
    ):
        self.ctx, self.run_id, self.worker = ctx, run_id, worker
        self.sources, self.since = set(sources or SOURCES), since
        self.hidden = 0  # stored lines of the other sources, left out (action lines are not counted)
        self.chunks: set[str] = set()
        self.activation_keys: set[str] = set()  # activation records read already
        self.activations: list[Activation] = []  # the invocations that name the run, oldest first
        self.traceback_shown = False  # the failed workload's traceback (from its marker) is added once

    def keep(self, line: LogLine) -> bool:
        if line.source not in self.sources:
            return False
        if self.worker is not None and line.worker is not None and line.worker != self.worker:
            return False
        if self.since is not None:
            try:
                return datetime.fromisoformat(line.at) >= self.since
            except ValueError:
                return True
        return True

    def new_lines(self) -> list[LogLine]:
        """Lines not returned before, in time order."""
        lines, keys = read_logs(self.ctx.storage, self.ctx.config.state_bucket, self.run_id, self.chunks)
        self.chunks.update(keys)
        if "action" in self.sources:
            fresh = [
                a
                for a in new_activations(self.ctx.storage, self.ctx.config.state_bucket, self.activation_keys)
                if names_run(a, self.run_id)
            ]
            self.activations += fresh
            lines += action_lines(fresh, self.run_id)
        lines += self._traceback_line()
        kept = [line for line in lines if self.keep(line)]
        self.hidden += sum(1 for line in lines if line.source not in self.sources)
        return sorted(kept, key=LogLine.sort_key)

    def _traceback_line(self) -> list[LogLine]:
        """The failed workload's traceback (file and line), from the failure marker the run
        record keeps: the workload's log has the error's message alone."""
        if self.traceback_shown or "workload" not in self.sources:
            return []
        run = self.ctx.ledger.get(self.run_id)
        trace = workload_traceback(run)
        if not trace:
            return []
        self.traceback_shown = True
        at = str((run.result or {}).get("finished_at") or run.entered_at(run.state) or run.created_at)
        return [
            LogLine(
                at,
                "workload",
                "the workload failed (its failure marker):\n" + self.ctx.scrubber.scrub(trace).rstrip(),
                None,
                "marker",
            )
        ]


def format_line(line: LogLine) -> str:
    """One entry for a terminal: its control characters shown as escapes (:func:`visible`),
    and the lines of a multi-line entry after the first indented, so that no text a
    workload logs can pass for an entry of its own (entries start at the margin)."""
    who = visible(line.source if line.worker is None else f"vm{line.worker} {line.source}")
    head = f"{visible(line.at[:23].replace('T', ' '))}  {who:<14} "
    return head + visible(line.text, keep_newlines=True).replace("\n", "\n" + " " * len(head))


def show_logs(ctx: Context, args, out: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep) -> int:
    ctx.ledger.get(args.run_id)  # RunNotFoundError names the run
    everything = getattr(args, "all", False)
    logs = RunLogs(
        ctx, args.run_id, args.worker, args.source or (None if everything else list(DEFAULT_SOURCES)), since_time(args.since)
    )
    printed = 0
    while True:
        done = not args.follow or ctx.ledger.get(args.run_id).state == RunState.DESTROYED
        lines = logs.new_lines()  # read after the state: lines shipped before DESTROYED are all seen
        for line in lines:
            out(format_line(line))
        printed += len(lines)
        if done:
            if not args.follow and not lines and not logs.chunks:
                out(f"no logs stored for run {args.run_id} (yet)")
            elif not (args.source or everything):
                none = "" if printed else "no workload or agent lines; "
                out(
                    f"({none}{logs.hidden} engine and boot lines and the action invocations are not shown: "
                    f"`ephemera logs {args.run_id} --all` shows every line)"
                )
            return 0
        sys.stdout.flush()
        sleep(FOLLOW_INTERVAL)


def cmd_logs(args) -> int:
    return show_logs(Context(args.config), args)
