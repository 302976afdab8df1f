"""What ``ephemera runs`` and ``ephemera runs show`` print."""

from __future__ import annotations

import json
from datetime import datetime

from ephemera.cli.tables import human_duration, human_size, table
from ephemera.context import Context
from ephemera.errors import EphemeraError
from ephemera.model.runs import ENDED_STATES, RunRecord, RunState
from ephemera.timeutil import since
from ephemera.vm.heartbeats import HEARTBEAT_INTERVAL, SILENT_BEATS, seconds_since_last
from ephemera.vm.reports import PHASES, vm_reports, vm_seconds


def vm_reports_or_none(ctx: Context, run: RunRecord) -> list[dict]:
    """What a live run's VMs report (their heartbeats), [] if unreadable."""
    try:
        return vm_reports(ctx.storage, ctx.config.state_bucket, run.run_id)
    except EphemeraError:
        return []


def last_heartbeat(ctx: Context, run: RunRecord) -> float | None:
    """Seconds since the most recent heartbeat of any VM of the run, or None."""
    try:
        return seconds_since_last(ctx.storage, ctx.config.state_bucket, run.run_id)
    except EphemeraError:  # the listing is informative only
        return None


def runs_table(ctx: Context, include_destroyed: bool = True, heartbeat_interval: float = HEARTBEAT_INTERVAL) -> str:
    """The ledger as a table; a VM is SILENT after ``SILENT_BEATS`` missed heartbeats."""
    silent_after = SILENT_BEATS * heartbeat_interval
    rows = []
    for run in ctx.ledger.list():
        if not include_destroyed and run.state == RunState.DESTROYED:
            continue
        end = run.entered_at(RunState.DESTROYED)
        elapsed = (datetime.fromisoformat(end) - datetime.fromisoformat(run.created_at)).total_seconds() if end else since(run.created_at)
        vm = ""
        if run.state in (RunState.APPLYING, RunState.RUNNING):
            beat = last_heartbeat(ctx, run)
            vm = "no heartbeat" if beat is None else (f"SILENT {human_duration(beat)}" if beat > silent_after else f"ok {human_duration(beat)} ago")
        trigger = run.event.get("trigger") or run.event.get("kind", "")
        error = run.error.code if run.error else ""
        rows.append([run.run_id, run.workspace, str(run.state), run.created_at[:19].replace("T", " "), human_duration(elapsed), trigger, vm, error])
    if not rows:
        return "no runs yet"
    return table(["RUN ID", "WORKSPACE", "STATE", "CREATED (UTC)", "DURATION", "TRIGGER", "VM", "ERROR"], rows)


def timeline(run: RunRecord, origin: str | None = None, vms: list[dict] | None = None) -> str:
    """One line per state and per VM boot phase, in time order: time since ``origin``
    (default: the run's creation)."""
    start = datetime.fromisoformat(origin or run.created_at)
    events = [(t.at, t.state, t.reason) for t in run.transitions]
    for vm in run.vms if vms is None else vms:
        for name, at in (vm.get("phases") or {}).items():
            if name in PHASES:
                events.append((at, f"  vm{vm['worker']} {name}", _phase_note(vm, name)))
    rows = []
    for at, what, why in sorted(events, key=lambda e: e[0]):
        offset = (datetime.fromisoformat(at) - start).total_seconds()
        rows.append([f"+{offset:7.2f}s", what, at[11:23], why])
    return table(["SINCE", "STATE / VM PHASE", "AT (UTC)", "WHY"], rows)


def _phase_note(vm: dict, name: str) -> str:
    gpu = vm.get("gpu")
    if name == "driver_ready":
        if not gpu:
            return "no GPU promised"
        return f"{gpu['count']} x {', '.join(sorted(set(gpu['models'])))}, driver {gpu['driver']}, CUDA {gpu['cuda']} ({gpu['probe']})"
    return ""


def vm_time(seconds: dict) -> str:
    """The VM-seconds of a run, and how many of them were outside the workload."""
    if not seconds:
        return ""
    share = f" ({100 * seconds['outside'] / seconds['total']:.0f}%)" if seconds.get("total") else ""
    return (f"VM time: {human_duration(seconds['total'])} in all, {human_duration(seconds['workload'])} in the workload, "
            f"{human_duration(seconds['outside'])} outside it{share} (booting, installing, proving GPUs, idle)")


def run_details(ctx: Context, run: RunRecord) -> str:
    parts = [f"run {run.run_id}  workspace {run.workspace}  engine {run.engine}  state {run.state}",
             f"hard deadline {run.hard_deadline}"]
    event, job = run.event, run.job
    if event:  # an orphan sweep has no event and no job
        parts.append(f"event: {event.get('kind')} via {event.get('source')}"
                     + (f" trigger {event.get('trigger')}" if event.get("trigger") else "")
                     + (f" {event.get('bucket')}/{event.get('key')}" if event.get("key") else ""))
    if job is not None:
        parts.append(f"job: {job.entry} params {json.dumps(job.params)} -> {job.output_bucket}/{job.output_prefix}")
    vms = run.vms or ([] if run.state == RunState.DESTROYED else vm_reports_or_none(ctx, run))
    parts.append("\ntimeline:\n" + timeline(run, vms=vms))
    if run.bundle:
        b = run.bundle
        parts.append(f"bundle: {b['sha256'][:16]} ({human_size(b['size'])}: {b['wheel']}, {b['source_files']} source files, "
                     f"requirements {', '.join(b['requirements']) or 'none'})")
    seconds = run.vm_seconds or (vm_seconds(vms) if vms else {})
    if seconds:
        parts.append(vm_time(seconds) + ("" if run.vm_seconds else " so far"))
    if run.activities:
        parts.append("\nactivities:\n" + table(["ID", "KIND", "STATE", "STARTED", "FINISHED"],
                                              [[a.id, a.kind, a.state, a.started_at[11:23], (a.finished_at or "")[11:23]] for a in run.activities]))
    if run.resources:
        parts.append("\nresources reported:\n  " + "\n  ".join(run.resources))
    if run.outputs:
        parts.append("\noutputs:\n" + json.dumps(run.outputs, indent=2))
    if run.result and run.result.get("result") is not None:
        parts.append("\nworkload result:\n" + json.dumps(run.result.get("result"), indent=2))
    if run.error:
        retry = "retryable" if run.error.retryable else "not retryable"
        parts.append(f"\nerror: {run.error.code} ({retry}): {run.error.message}")
        if run.error.log_tail:
            parts.append("log tail:\n  " + "\n  ".join(run.error.log_tail.splitlines()[-20:]))
    if run.state in ENDED_STATES:
        parts.append(f"\n(teardown pending since {run.entered_at(run.state)})")
    return "\n".join(parts)
