"""What the dashboard's pages show, gathered from the ledger, the VMs' heartbeats, the
activation records and the run logs (the same sources as ``ephemera runs`` and
``ephemera logs``)."""

from __future__ import annotations

import json
from datetime import datetime

from ephemera.cli.logs import DEFAULT_SOURCES, RunLogs, format_line
from ephemera.cli.results import outcome, output_objects_or_note, teardown, workload_result, workload_traceback
from ephemera.cli.runs import cost_lines, cost_of, image_line, last_heartbeat, run_vms
from ephemera.cli.tables import human_duration, human_size
from ephemera.cli import preemptions
from ephemera.cli.timeline_svg import timeline_svg
from ephemera.context import Context
from ephemera.lifecycle.reaper import MAX_DESTROY_ATTEMPTS
from ephemera.model.cost import money
from ephemera.model.runs import RunRecord, RunState
from ephemera.timeutil import since
from ephemera.runtime.activations import list_activations
from ephemera.vm.heartbeats import HEARTBEAT_INTERVAL, SILENT_BEATS

S = RunState
ACTIVATIONS_SHOWN = 50


def needs_person(run: RunRecord) -> str | None:
    """Why a run needs a person (a destroy the reaper no longer retries), or None."""
    if run.state != S.DESTROY_FAILED:
        return None
    if run.error is not None and not run.error.retryable:
        return f"destroy failed ({run.error.code}) and will not be retried: {run.error.message}"
    if run.attempts.get("destroy", 0) >= MAX_DESTROY_ATTEMPTS:
        return f"destroy failed {run.attempts['destroy']} times"
    return None


def duration(run: RunRecord) -> float:
    end = run.entered_at(S.DESTROYED)
    return (
        (datetime.fromisoformat(end) - datetime.fromisoformat(run.created_at)).total_seconds() if end else since(run.created_at)
    )


def heartbeat(ctx: Context, run: RunRecord) -> str:
    if run.state in (S.REQUESTED, S.DESTROYED):  # no VM yet, or none left
        return ""
    beat = last_heartbeat(ctx, run)
    if beat is None:
        return "no heartbeat"
    return f"SILENT {human_duration(beat)}" if beat > SILENT_BEATS * HEARTBEAT_INTERVAL else f"ok {human_duration(beat)} ago"


def run_row(ctx: Context, run: RunRecord) -> dict:
    cost = cost_of(ctx, run)
    return {
        "run_id": run.run_id,
        "state": str(run.state),
        "outcome": outcome(run),
        "teardown": teardown(run),
        "workspace": run.workspace,
        "trigger": run.event.get("trigger") or run.event.get("kind", ""),
        "created": run.created_at[:19].replace("T", " "),
        "duration": human_duration(duration(run)),
        "cost": money(cost.cost, cost.currency) + ("" if cost.final else " so far"),
        "heartbeat": heartbeat(ctx, run),
        "error": run.error.code if run.error else "",
        "open": run.state != S.DESTROYED,
        "person": needs_person(run),
    }


def index_view(ctx: Context) -> dict:
    runs = list(ctx.ledger.list())[::-1]  # newest first
    rows = [run_row(ctx, run) for run in runs]
    return {"runs": rows, "open": [r for r in rows if r["open"]], "person": [r for r in rows if r["person"]]}


def run_view(ctx: Context, run_id: str, log_lines: int = 200) -> dict:
    """The run page: its results first (outcome, result, output objects, traceback),
    then its timeline, cost and history; the workload's and agent's log lines."""
    run = ctx.ledger.get(run_id)
    vms = run_vms(ctx, run)
    logs = RunLogs(ctx, run_id)
    everything = logs.new_lines()  # reads the run's activation records too
    lines = [line for line in everything if line.source in DEFAULT_SOURCES]
    objects, note = output_objects_or_note(ctx, run, links=False)
    result = workload_result(run)
    return {
        "run": run_row(ctx, run),
        "record": run,
        "svg": timeline_svg(run, vms),
        "cost": cost_lines(cost_of(ctx, run, vms)),
        "image": image_line(run.bundle, vms) if run.bundle else None,  # what its VMs started from
        "transitions": run.transitions,
        "preemptions": preemptions.rows(run),
        "spot": preemptions.summary(run),
        "activities": run.activities,
        "activations": logs.activations[::-1],
        "logs": [format_line(line) for line in lines[-log_lines:]],
        "log_count": len(lines),
        "hidden_count": len(everything) - len(lines),
        "error": run.error,
        "vms": vms,
        "result": None if result is None else json.dumps(result, indent=2, default=str),
        "objects": [{"name": o.name, "size": human_size(o.size)} for o in objects],
        "objects_note": note,
        "traceback": ctx.scrubber.scrub(workload_traceback(run)),
    }


def run_svg(ctx: Context, run_id: str) -> str:
    """The run's timeline picture alone (no logs, activations or cost read)."""
    run = ctx.ledger.get(run_id)
    return timeline_svg(run, run_vms(ctx, run))


def logs_view(ctx: Context, run_id: str, source: str | None = None, worker: int | None = None) -> dict:
    """A run's log lines: the workload's and agent's by default, ``source="all"`` for every
    source, or one source."""
    run = ctx.ledger.get(run_id)
    sources = None if source == "all" else [source] if source else list(DEFAULT_SOURCES)
    lines = RunLogs(ctx, run_id, worker, sources).new_lines()
    return {"run": run_row(ctx, run), "logs": [format_line(line) for line in lines], "source": source, "worker": worker}


def activations_view(ctx: Context) -> dict:
    return {"activations": list_activations(ctx.storage, ctx.config.state_bucket, ACTIVATIONS_SHOWN)}
