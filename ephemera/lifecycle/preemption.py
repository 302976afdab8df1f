"""The reaper's preemption rule: a RUNNING run whose spot VM the cloud reclaimed is
recovered (re-applied for the same run), not failed as silent.

A VM is preempted when its own heartbeat says so (``state: preempted`` with the
``preemption`` service field the VM writes at the notice, within the cloud's grace), or
when the engine's view of the instance says the cloud reclaimed it (a stack whose hooks
are a :class:`~ephemera.stack.hooks.PreemptionView`). An error reading either is no
preemption: the silent-VM rule, with its grace, still applies, and the hard deadline
always holds. A VM's notice is acted on once the cloud's grace after it has passed
(:data:`GRACE`: its last checkpoint may still be on its way) or the engine's view says
its instance is gone, whichever comes first.

On a preemption the run records it (:class:`~ephemera.model.runs.Preemption`: worker,
notice time, source, the lost VM's paid seconds), then, while ``spot.max_recoveries``
allows and the hard deadline leaves ``timeouts.boot`` for a replacement to boot, it is
re-applied with ``recovery = n + 1`` (the stacks' VMs have it in their replace trigger,
so the same workspace gets new VMs; run id, job, bundle, grants and deadline stay).
Recoveries spent: ``spot.fallback = on_demand`` re-applies once with ``spot = false``;
else the run ends FAILED (``PREEMPTED``) and is destroyed.

Heartbeats of a lost VM outlive it (its replacement overwrites them once it boots):
:func:`current_beats` leaves out those written before the recovery's apply, and the
preemption each one reported, so they make the new VM look neither preempted nor silent.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone

from ephemera.config.spot import SpotFallback, SpotSection
from ephemera.context import Context
from ephemera.errors import EphemeraError, PreemptedError
from ephemera.lifecycle.activities import apply_run, destroy_run, record_failure
from ephemera.model.heartbeat import Heartbeat
from ephemera.model.runs import Preemption, RunError, RunRecord, RunState
from ephemera.notify import notify_run
from ephemera.stack import config_stack, stack_hooks
from ephemera.stack.hooks import PreemptionView
from ephemera.timeutil import since
from ephemera.vm.heartbeats import read_heartbeats

log = logging.getLogger("ephemera.reaper")
PREEMPTED = "preempted"  # the VMState / VMPhase value a preempted VM's heartbeat carries
# who may send the notice a heartbeat reports -> the seconds the cloud gives a VM between its
# notice and the reclaim (AWS: the two-minute interruption notice; IBM VPC: 30 s best effort;
# the local simulation's default); a recovery waits them out, so the lost VM may write its
# last checkpoint, unless the engine's view already says the instance is gone
GRACE = {"aws": 120.0, "ibm": 30.0, "local": 2.0}
UNKNOWN_GRACE = 120.0  # a notice from a source this version does not know: the longest
TEXT_MAX = 200  # characters of a VM-written text kept on the record
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def _text(value: object) -> str:
    """A VM-written value as short printable text (it reaches terminals and pages)."""
    return _UNPRINTABLE.sub("?", str(value))[:TEXT_MAX] if value is not None else ""


def _iso(value: object) -> str:
    """``value`` as an ISO time in UTC (read as UTC without an offset), or "" if it is none."""
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return ""
    if when is None:
        return ""
    return (when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when).astimezone(timezone.utc).isoformat()


def apply_started(run: RunRecord) -> str:
    """When the run's current apply started (its latest APPLYING), or its creation."""
    return run.entered_at(RunState.APPLYING) or run.created_at


def _before(at: str, start: str) -> bool:
    try:
        return datetime.fromisoformat(at) < datetime.fromisoformat(start)
    except (TypeError, ValueError):
        return False


def notice_of(beat: Heartbeat) -> dict | None:
    """The ``preemption`` record of a heartbeat that says its VM was preempted, else None."""
    state = beat.state.value if beat.state is not None else None
    notice = beat.services.get("preemption")
    if state != PREEMPTED and not isinstance(notice, dict):
        return None
    return notice if isinstance(notice, dict) else {}


def _recorded(run: RunRecord, worker: int, notice_at: str) -> bool:
    return any(p.worker == worker and p.notice_at == notice_at for p in run.preemptions)


def current_beats(run: RunRecord, beats: list[Heartbeat]) -> list[Heartbeat]:
    """The heartbeats of the run's current VMs: after a recovery, none written before its
    apply started, and none reporting a preemption already recorded."""
    if not run.preemptions:
        return beats
    start = apply_started(run)
    kept = []
    for beat in beats:
        notice = notice_of(beat)
        if _before(beat.at, start) or (notice is not None and _recorded(run, beat.worker, _iso(notice.get("notice_at")))):
            continue
        kept.append(beat)
    return kept


def _age(iso: str, now: datetime) -> float:
    """Seconds since ``iso``; a time that cannot be read counts as long past."""
    try:
        return since(iso, now)
    except (TypeError, ValueError):
        return float("inf")


def _paid(beat: Heartbeat | None, run: RunRecord, now: datetime) -> float:
    """Seconds the lost VM was billed: from its apply (or its boot, when it reported one) to now."""
    start = (beat.phases.get("booted") if beat is not None else None) or apply_started(run)
    try:
        return round(max(0.0, since(start, now)), 1)
    except (TypeError, ValueError):
        return 0.0


def _from_view(ctx: Context, run: RunRecord) -> dict[int, str]:
    spec = config_stack(ctx.config)
    hooks = stack_hooks(spec)
    if not isinstance(hooks, PreemptionView):
        return {}
    try:
        return hooks.preempted_workers(spec, ctx.config, run.run_id, run.outputs, apply_started(run))
    except Exception as exc:  # noqa: BLE001 - a failed status call is never a preemption
        log.warning("reaper: run %s: the engine's view of its instances: %s", run.run_id, ctx.scrubber.scrub(str(exc)))
        return {}


def lost_vms(ctx: Context, run: RunRecord, now: datetime) -> list[Preemption]:
    """The run's VMs preempted and not yet recorded, by their heartbeats and the engine's view."""
    try:
        beats = current_beats(run, read_heartbeats(ctx.storage, ctx.config.state_bucket, run.run_id))
    except EphemeraError:
        beats = []  # cannot read them: the engine's view may still tell
    by_worker = {b.worker: b for b in beats if b.run_id == run.run_id}
    lost: dict[int, Preemption] = {}
    for worker, beat in by_worker.items():
        notice = notice_of(beat)
        if notice is None:
            continue
        source = _text(notice.get("source"))
        lost[worker] = Preemption(
            worker=worker,
            detected_at=now.isoformat(),
            source=source if source in GRACE else "heartbeat",
            notice_at=_iso(notice.get("notice_at")) or _iso(beat.phases.get(PREEMPTED)) or beat.at,
            why=_text(notice.get("action")) or "preemption notice",
            paid_seconds=_paid(beat, run, now),
        )
    view = _from_view(ctx, run)
    for worker, p in list(lost.items()):  # still in its grace, and not yet gone: let it checkpoint
        if worker not in view and _age(p.notice_at, now) < GRACE.get(p.source, UNKNOWN_GRACE):
            del lost[worker]
    for worker, why in view.items():
        if worker not in lost:
            lost[worker] = Preemption(
                worker=worker,
                detected_at=now.isoformat(),
                source="engine",
                why=_text(why),
                paid_seconds=_paid(by_worker.get(worker), run, now),
            )
    return [lost[w] for w in sorted(lost)]


def recover_preempted(ctx: Context, run: RunRecord, now: datetime) -> str | None:
    """The rule: None when no VM of the RUNNING run was preempted, else what was done."""
    if run.state != RunState.RUNNING:
        return None
    lost = lost_vms(ctx, run, now)
    if not lost:
        return None
    spot = ctx.config.section(SpotSection)
    workers = ", ".join(f"worker {p.worker} ({p.source}: {p.why})" for p in lost)
    room = ctx.config.timeouts.boot  # a replacement must have time to boot before the deadline
    deadline = datetime.fromisoformat(run.hard_deadline) if run.hard_deadline else None
    time_left = deadline is None or now + timedelta(seconds=room) < deadline
    n = run.recovery
    if time_left and n < spot.max_recoveries and not run.on_demand:
        outcome, reason = "recovered", f"recovering from preemption ({n + 1}/{spot.max_recoveries}): {workers}"
    elif time_left and spot.fallback == SpotFallback.ON_DEMAND and not run.on_demand:
        outcome, reason = "on_demand", f"recovering from preemption on on-demand capacity (spot recoveries spent: {n}): {workers}"
    else:
        return _give_up(ctx, run, lost, workers, time_left, spot)
    for p in lost:
        p.outcome, p.recovery = outcome, n + 1

    def note(record: RunRecord) -> None:
        record.preemptions.extend(lost)
        record.recovery = n + 1
        record.on_demand = record.on_demand or outcome == "on_demand"

    applied = apply_run(ctx, run, reason=reason, change=note)
    notify_run(ctx, applied, "PREEMPTED", str(RunState.RUNNING), reason)  # once per run: its first recovery
    return reason


def _give_up(ctx: Context, run: RunRecord, lost: list[Preemption], workers: str, time_left: bool, spot: SpotSection) -> str:
    for p in lost:
        p.outcome = "failed"
    if not time_left:
        problem = f"VM preempted ({workers}) with less than timeouts.boot ({ctx.config.timeouts.boot}s) left before the hard deadline {run.hard_deadline}"
    elif run.on_demand:
        problem = f"VM preempted on on-demand capacity ({workers}) after {run.recovery} recoveries"
    else:
        problem = f"VM preempted ({workers}) after {run.recovery} recoveries (spot.max_recoveries = {spot.max_recoveries})"
    error = PreemptedError(problem)
    ctx.ledger.update(run.run_id, lambda record: record.preemptions.extend(lost))
    record_failure(ctx, run.run_id, RunError.from_exception(error), RunState.FAILED, f"reaper: {problem}")
    destroy_run(ctx, run.run_id, "reaper: preempted, no recovery left")
    return problem


__all__ = ["apply_started", "current_beats", "lost_vms", "notice_of", "recover_preempted"]
