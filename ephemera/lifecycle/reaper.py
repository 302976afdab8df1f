"""The reaper: nothing outlives its hard timeout, whatever failed.

One pass looks at every open run and decides, from its state and times alone, what
it needs:

- APPLYING / DESTROYING with an in-flight engine activity: poll it;
- REQUESTED waiting for a busy workspace: apply it once the workspace frees, within
  the run's window (:mod:`ephemera.lifecycle.waiting`);
- REQUESTED or APPLYING with no activity in flight for longer than the action
  timeout (the action died), or APPLYING past ``timeouts.apply``: APPLY_FAILED, destroy;
- RUNNING whose completion marker exists (its bucket event was lost): finish, destroy;
- RUNNING whose spot VM was preempted (its heartbeat or the engine's view says so):
  re-applied for the same run up to ``spot.max_recoveries``, then its fallback or
  FAILED (PREEMPTED), destroy (:mod:`ephemera.lifecycle.preemption`);
- RUNNING whose VMs have not all reported ready within ``timeouts.boot``: FAILED
  (BOOT_TIMEOUT), destroy (:mod:`ephemera.lifecycle.boot_timeout`);
- RUNNING whose workload VM (or every VM) stopped heartbeating for longer than
  ``timeouts.heartbeat``: FAILED (VMS_SILENT), destroy (:mod:`ephemera.lifecycle.silent_vms`);
- RUNNING past the effective deadline its cost cap set: TIMED_OUT (BUDGET_EXCEEDED),
  destroy (:mod:`ephemera.lifecycle.cost_cap`);
- any run past its hard deadline before it ended: TIMED_OUT, destroy;
- TIMED_OUT and APPLY_FAILED: destroy;
- SUCCEEDED / FAILED not destroyed within ``timeouts.soft``: destroy;
- DESTROYING with nothing in flight for longer than the action timeout: the destroy
  died; record DESTROY_FAILED and retry it;
- DESTROY_FAILED: retry with exponential backoff, only when whoever recorded the
  failure marked it ``retryable`` (a throttled or unreachable API, a busy workspace,
  an interrupted or incomplete destroy), up to ``MAX_DESTROY_ATTEMPTS``.

Before the rules, :func:`ephemera.lifecycle.reconcile.reconcile` compares the engine's
state with the ledger: resources an open run's record does not name (a crash between
the engine creating them and the ledger recording it) are written into that record,
so its rules destroy them; resources in a workspace whose owning run is DESTROYED or
unknown, with no open run on the workspace, get a sweep record of their own that
these same rules destroy.

Each decision is returned with its reason, and the reason is stamped in the record.
"""

from __future__ import annotations

import logging
from datetime import datetime

from ephemera import layout
from ephemera.bundle.imagestacks import build_engine
from ephemera.context import Context
from ephemera.errors import StateConflictError
from ephemera.lifecycle import apply_lease
from ephemera.lifecycle.activities import advance_run, destroy_run, finish_run, record_failure
from ephemera.lifecycle.boot_timeout import boot_overdue
from ephemera.lifecycle.cost_cap import end_over_cap
from ephemera.lifecycle.preemption import recover_preempted
from ephemera.lifecycle.reap_action import ReapAction, reap_summary
from ephemera.lifecycle.reconcile import reconcile
from ephemera.lifecycle.silent_vms import vms_silent
from ephemera.lifecycle.waiting import is_waiting, retry_waiting
from ephemera.model import marker as markers
from ephemera.model.runs import RunError, RunRecord, RunState
from ephemera.notify import notify_run
from ephemera.timeutil import now_utc, since

log = logging.getLogger("ephemera.reaper")
S = RunState
MAX_DESTROY_ATTEMPTS = 8
BACKOFF_BASE = 30.0  # seconds before the first destroy retry; doubles each attempt
BACKOFF_MAX = 3600.0
PER_RUN_SECONDS = 20.0  # time a pass keeps back for one more run (an engine call and a record write)


def _age(iso: str | None, now: datetime) -> float:
    return since(iso, now) if iso else 0.0


def _in_flight(run: RunRecord, kind: str) -> bool:
    act = run.last_activity(kind)
    return act is not None and not act.done


def _marker(ctx: Context, run: RunRecord) -> tuple[bool, markers.Marker] | None:
    """The run's completion marker, where its job (not today's config) put it."""
    if run.job is not None:
        return markers.find(ctx.storage, run.job.output_bucket, run.job.output_prefix)
    prefix = layout.output_prefix(ctx.config.workload.output_prefix, run.run_id)
    return markers.find(ctx.storage, ctx.config.output_bucket, prefix)


def _end_then_destroy(ctx: Context, run: RunRecord, state: RunState, why: str) -> RunRecord:
    ctx.ledger.transition(run.run_id, state, why)
    return destroy_run(ctx, run.run_id, f"reaper: {why}")


def reap_run(ctx: Context, run: RunRecord, now: datetime | None = None) -> str | None:
    """One step for one run; returns the reason if it acted, else None. An image build's
    record (:mod:`ephemera.bundle.cloudimage`) is reaped with its builder's engine; while its
    VM installs (RUNNING) only its hard deadline ends it."""
    now = now or now_utc()
    builder = build_engine(ctx.config, run)
    if builder is not None:
        ctx = Context(ctx.config, storage=ctx.storage, engine=builder)
        if run.state == S.RUNNING:
            if run.hard_deadline and now > datetime.fromisoformat(run.hard_deadline):
                why = f"image build past its hard deadline {run.hard_deadline}"
                _end_then_destroy(ctx, run, S.TIMED_OUT, why)
                return why
            return None
    return _reap_rules(ctx, run, now)


def _reap_rules(ctx: Context, run: RunRecord, now: datetime) -> str | None:
    timeouts = ctx.config.timeouts
    past_deadline = bool(run.hard_deadline) and now > datetime.fromisoformat(run.hard_deadline)

    if run.state in (S.APPLYING, S.DESTROYING) and _in_flight(run, "apply" if run.state == S.APPLYING else "destroy"):
        try:
            advanced = advance_run(ctx, run)
        except Exception as exc:  # noqa: BLE001 - a failing status call must not shield the deadline
            log.warning("reaper: run %s: polling its activity failed: %s", run.run_id, ctx.scrubber.scrub(str(exc)))
            advanced = run
        if advanced.state != run.state:
            return f"engine activity finished: {advanced.state}"
        run = advanced
        if run.state == S.APPLYING and (past_deadline or _age(run.entered_at(S.APPLYING), now) > timeouts.apply):
            return _fail_apply(
                ctx,
                run,
                f"apply not finished after {timeouts.apply}s" if not past_deadline else "hard deadline passed during apply",
            )
        return None

    if is_waiting(run):  # the engine found the workspace busy: apply once it frees, within the window
        return retry_waiting(ctx, run, now)

    if run.state in (S.REQUESTED, S.APPLYING):
        stalled = _age(run.entered_at(run.state), now) > timeouts.action
        if past_deadline or stalled:
            why = (
                "hard deadline passed before apply finished"
                if past_deadline
                else f"{run.state} for over {timeouts.action}s with no activity in flight (the action died)"
            )
            return _fail_apply(ctx, run, why)
        died = apply_lease.holder_died(ctx, run.run_id) if run.state == S.APPLYING else None
        if died:  # killed mid-apply (a second Ctrl-C, an OOM kill): no need to wait for the action timeout
            return _fail_apply(ctx, run, f"APPLYING with no activity in flight: {died} (the action died)")
        return None

    if run.state == S.RUNNING:
        found = _marker(ctx, run)
        if found is not None:
            success, marker = found
            finish_run(ctx, run.run_id, success, marker)
            destroy_run(ctx, run.run_id, "reaper: completion marker found without its event")
            return "completion marker found without its event"
        over = end_over_cap(ctx, run, now)  # budget.max_cost_per_run: BUDGET_EXCEEDED, destroy
        if over:
            return over
        if past_deadline:
            why = f"hard deadline {run.hard_deadline} passed"
            _end_then_destroy(ctx, run, S.TIMED_OUT, why)
            return why
        recovering = recover_preempted(ctx, run, now)
        if recovering:
            return recovering
        overdue = boot_overdue(ctx, run, now)
        if overdue:
            record_failure(ctx, run.run_id, RunError("BOOT_TIMEOUT", overdue), S.FAILED, f"reaper: {overdue}")
            destroy_run(ctx, run.run_id, "reaper: boot timeout")
            return overdue
        silent = vms_silent(ctx, run, now)
        if silent:
            record_failure(ctx, run.run_id, RunError("VMS_SILENT", silent), S.FAILED, f"reaper: {silent}")
            destroy_run(ctx, run.run_id, "reaper: dead VMs")
            return silent
        return None

    if run.state in (S.TIMED_OUT, S.APPLY_FAILED):
        destroy_run(ctx, run.run_id, f"reaper: {run.state} runs are destroyed")
        return f"{run.state} runs are destroyed"

    if run.state in (S.SUCCEEDED, S.FAILED):
        if _age(run.entered_at(run.state), now) > timeouts.soft or past_deadline:
            why = f"{run.state} for over {timeouts.soft}s and not destroyed"
            destroy_run(ctx, run.run_id, f"reaper: {why}")
            return why
        return None

    if run.state == S.DESTROYING:  # nothing in flight: the destroy died
        if _age(run.entered_at(S.DESTROYING), now) > timeouts.action:
            interrupted = RunError("DESTROY_INTERRUPTED", "destroy did not finish (the action died)", retryable=True)
            failed = record_failure(ctx, run.run_id, interrupted, S.DESTROY_FAILED, "reaper: destroy interrupted")
            return _retry_destroy(ctx, failed, now, force=True)
        return None

    if run.state == S.DESTROY_FAILED:
        return _retry_destroy(ctx, run, now)
    return None


def _fail_apply(ctx: Context, run: RunRecord, why: str) -> str:
    record_failure(ctx, run.run_id, RunError("APPLY_TIMEOUT", why), S.APPLY_FAILED, f"reaper: {why}")
    destroy_run(ctx, run.run_id, "reaper: destroying partial resources")
    return why


NEEDS_A_PERSON = "needs a person"


def _retry_destroy(ctx: Context, run: RunRecord, now: datetime, force: bool = False) -> str | None:
    """Destroy again after a failure its recorder marked retryable, with backoff;
    ``force`` retries at once (the destroy was interrupted: nothing to wait for)."""
    attempts = run.attempts.get("destroy", 0)
    if run.error is not None and not run.error.retryable:
        return (
            f"{NEEDS_A_PERSON}: destroy failed ({run.error.code}) and the failure is not retryable; "
            f"fix it and run `ephemera invoke destroy run_id={run.run_id}`"
        )
    if attempts >= MAX_DESTROY_ATTEMPTS:
        return f"{NEEDS_A_PERSON}: destroy failed {attempts} times; see `ephemera runs show {run.run_id}`"
    wait = min(BACKOFF_BASE * 2 ** max(attempts - 1, 0), BACKOFF_MAX)
    if not force and _age(run.entered_at(S.DESTROY_FAILED), now) < wait:
        return None
    destroy_run(ctx, run.run_id, f"reaper: destroy retry {attempts + 1} after a retryable failure")
    return f"destroy retry {attempts + 1}"


def reap(ctx: Context, now: datetime | None = None) -> list[ReapAction]:
    """One pass: reconcile the engine's state with the ledger, then every open run.

    One run's failure (a corrupt record, an engine error) never stops the pass. Runs
    the invocation's budget (``ctx.budget``) has no time left for wait for the next pass."""
    done = []
    runs, invalid = ctx.ledger.scan()
    for exc in invalid:  # skipped, and reported: someone must look at it
        log.error("reaper: skipping %s", exc.message)
        done.append(ReapAction(layout.run_id_of(exc.key) or exc.key, "-", "-", f"skipped: {exc.code}: {exc.message}"))
    try:
        done += reconcile(ctx, runs, now)
    except Exception as exc:  # noqa: BLE001 - the per-run rules still run
        message = ctx.scrubber.scrub(getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")
        log.warning("reaper: reconcile failed: %s", message)
        done.append(ReapAction("-", "-", "-", f"error: reconcile: {message}"))
    left = 0
    for run in runs:
        if run.state == S.DESTROYED:
            continue
        if not ctx.budget.allows(PER_RUN_SECONDS):  # the invocation's time is nearly spent
            left += 1
            continue
        try:
            why = reap_run(ctx, run, now)
        except StateConflictError as exc:  # another action moved it meanwhile: fine
            log.info("reaper: run %s changed underneath: %s", run.run_id, exc.message)
            continue
        except Exception as exc:  # noqa: BLE001 - one bad run must not shield the others
            message = ctx.scrubber.scrub(getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")
            log.warning("reaper: run %s: %s", run.run_id, message)
            done.append(ReapAction(run.run_id, str(run.state), str(run.state), f"error: {message}"))
            continue
        if why:
            fresh = ctx.ledger.get(run.run_id)  # as this pass left it: its state and its latest error
            after = fresh.state
            level = logging.ERROR if why.startswith(NEEDS_A_PERSON) else logging.INFO
            log.log(level, "reaper: run %s %s -> %s: %s", run.run_id, run.state, after, why)
            if why.startswith(NEEDS_A_PERSON):  # told once per run (ephemera.notify)
                notify_run(ctx, fresh, "NEEDS_PERSON", str(after), why)
            done.append(ReapAction(run.run_id, str(run.state), str(after), why))
    if left:
        log.warning("reaper: time budget spent; %d run(s) left for the next pass", left)
        done.append(ReapAction("-", "-", "-", f"time budget spent: {left} run(s) left for the next pass"))
    return done


__all__ = ["MAX_DESTROY_ATTEMPTS", "NEEDS_A_PERSON", "ReapAction", "reap", "reap_run", "reap_summary"]
