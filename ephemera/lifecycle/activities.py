"""Applying and destroying a run's workspace through the engine, and recording each step.

Every state change goes through the ledger with a reason, and every failure through
:func:`record_failure` (one :class:`~ephemera.model.runs.RunError`, saying whether a
retry may get past it). A destroy is recorded DESTROYED only after the engine reports
that the workspace holds no resource.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from ephemera import layout
from ephemera.bundle.delivery import prepare_boot, remove_credentials
from ephemera.context import Context
from ephemera.engines.base import ActivityLogs, OrphanSweeper
from ephemera.engines.diagnostics import terraform_errors
from ephemera.errors import EngineError, EphemeraError, RunNotFoundError, WorkspaceBusyError
from ephemera.lifecycle import apply_lease, ladder
from ephemera.lifecycle.budget import admit
from ephemera.lifecycle.request import workspace_lock
from ephemera.model import marker as markers
from ephemera.model.logs import write_engine_log
from ephemera.model.runs import Activity, RunError, RunRecord, RunState
from ephemera.stack import check_run_variables, config_stack
from ephemera.timeutil import now_utc
from ephemera.vm.reports import merge_reports, vm_reports, vm_seconds, with_marker_times

log = logging.getLogger("ephemera.lifecycle")
S = RunState
BUSY_RETRY_SECONDS = 60.0  # how long one call retries a busy workspace, at most
RECORD_RESERVE_SECONDS = 5.0  # kept back from a busy retry for writing the record afterwards


def stack_variables(ctx: Context, run: RunRecord) -> tuple[dict, dict]:
    """The Terraform variables Ephemera offers a run's stack: (plain, secure); the engine
    passes on those the stack's spec declares. No storage key goes to
    Terraform: the VMs reach storage by their identity or a one-time credentials object
    (see :func:`ephemera.bundle.delivery.prepare_boot`), and the IBM provider in
    Schematics uses the caller's token. The boot documents, which carry the run's key,
    are added to ``secure`` by :func:`apply_run`."""
    config = ctx.config
    effective = run.budget.get("deadline") or run.hard_deadline  # a cost cap's sooner one: the VMs power off there too
    deadline = datetime.fromisoformat(effective)
    plain = {
        **config.workspace.variables,
        **ladder.rung_variables(config, run),  # a capacity-ladder rung's overrides; never Ephemera's own below
        "run_id": run.run_id,
        "workspace": run.workspace,
        "worker_count": run.job.worker_count if run.job is not None else 1,
        "job_key": layout.job_key(run.run_id),
        "state_bucket": config.state_bucket,
        "storage_backend": config.storage.backend,
        "hard_deadline": effective,
        "hard_timeout_seconds": max(60, int((deadline - now_utc()).total_seconds())),
        "recovery": run.recovery,  # part of the VMs' replace trigger: a recovery's re-apply replaces them
    }
    if run.on_demand:  # spot.fallback = on_demand after the spot recoveries were spent
        plain["spot"] = False
    return plain, {}


def record_failure(
    ctx: Context,
    run_id: str,
    error: RunError,
    state: RunState | None = None,
    reason: str = "",
    *,
    from_states: frozenset[RunState] | None = None,
) -> RunRecord:
    """Record a failure on a run (see :meth:`RunRecord.fail`) under its lock."""
    return ctx.ledger.update(run_id, lambda record: record.fail(error, state, reason, from_states=from_states))


def apply_run(
    ctx: Context,
    run: RunRecord,
    *,
    busy_wait: float = BUSY_RETRY_SECONDS,
    reason: str = "applying workspace",
    change: Callable[[RunRecord], None] | None = None,
) -> RunRecord:
    """Apply the run's workspace. Returns the record after the apply started or ended.

    A workspace the engine reports busy (locked by another activity) is retried for
    ``busy_wait`` seconds at most, within the invocation's budget; after that the run
    goes back to REQUESTED with the engine's reason, and the reaper applies it once the
    workspace frees (:mod:`ephemera.lifecycle.waiting`). ``change`` edits the record in
    the same write that enters APPLYING (a recovery's count and its preemptions)."""

    def enter(record: RunRecord) -> None:
        if change is not None:
            change(record)
        record.enter(S.APPLYING, reason + ladder.rung_note(ctx.config, record))

    run = ctx.ledger.update(run.run_id, enter)
    try:
        apply_lease.take(ctx, run.run_id)  # if this process dies mid-apply, the reaper ends the run at once
    except EphemeraError as exc:  # without it the reaper's action timeout still ends a dead apply
        log.warning("run %s: apply lease not written: %s", run.run_id, exc.message)
    try:
        return _apply(ctx, run, busy_wait)
    finally:
        apply_lease.release(ctx, run.run_id)


def _apply(ctx: Context, run: RunRecord, busy_wait: float) -> RunRecord:
    try:
        admit(ctx, run)  # budget caps: refused (BUDGET_EXCEEDED) before anything is paid for
        plain, secure = stack_variables(ctx, run)
        chosen = {**ctx.config.workspace.variables, **ladder.rung_variables(ctx.config, run)}  # may name a boot image
        boot = prepare_boot(ctx, run, chosen)  # the run's bundle, and what each VM boots from
        ctx.ledger.update(run.run_id, lambda record: setattr(record, "bundle", boot.bundle.to_dict()))
        plain.update(boot.variables)
        secure.update(boot.secure_variables)
        check_run_variables(config_stack(ctx.config), {**plain, **secure})
        engine = ctx.engine
    except Exception as exc:  # noqa: BLE001 - e.g. a missing workload.source: recorded, nothing applied
        failed = record_failure(
            ctx, run.run_id, RunError.from_exception(exc), S.APPLY_FAILED, from_states=frozenset({S.APPLYING})
        )
        return _nothing_created(ctx, failed)
    try:
        activity = _retry_busy(lambda: engine.apply(run.workspace, run.run_id, plain, secure), _busy_budget(ctx, busy_wait))
    except WorkspaceBusyError as exc:
        return record_failure(
            ctx,
            run.run_id,
            RunError.from_exception(exc),
            S.REQUESTED,
            f"waiting for the workspace: {exc.message}",
            from_states=frozenset({S.APPLYING}),
        )
    except Exception as exc:  # noqa: BLE001 - an engine crash must still leave a record
        return record_failure(ctx, run.run_id, RunError.from_exception(exc), S.APPLY_FAILED, from_states=frozenset({S.APPLYING}))
    return record_activity(ctx, run.run_id, activity)


def _nothing_created(ctx: Context, run: RunRecord) -> RunRecord:
    """A run that failed before its engine was asked for anything holds no resource: it
    is DESTROYED at once and its workspace lock released (its error stays recorded).
    A recovery's re-apply is not such a run: its earlier apply created resources."""
    if run.state != S.APPLY_FAILED or run.recovery:
        return run
    record = ctx.ledger.transition(run.run_id, S.DESTROYING, "apply failed before the engine was called")
    try:
        remove_credentials(ctx.storage, ctx.config.state_bucket, run.run_id)  # prepare_boot may have written VMs' keys
    except EphemeraError as exc:  # left DESTROYING: the reaper's destroy ends it, and removes them then
        log.warning("run %s: credentials objects not deleted yet: %s", run.run_id, exc.message)
        return record
    record = ctx.ledger.transition(run.run_id, S.DESTROYED, "nothing was created: the engine was never called")
    workspace_lock(ctx, record.workspace).release(run.run_id)
    return record


def _busy_budget(ctx: Context, most: float) -> float:
    """Seconds a busy workspace may be retried: ``most``, less what the invocation lacks
    (a few seconds stay for recording the outcome)."""
    return max(0.0, min(most, ctx.budget.remaining() - RECORD_RESERVE_SECONDS))


def record_activity(ctx: Context, run_id: str, activity: Activity) -> RunRecord:
    """Store an activity's latest state and move the run accordingly."""
    outputs = resources = None
    vms: list[dict] = []
    if activity.done:
        workspace = ctx.ledger.get(run_id).workspace
        outputs, resources = ctx.engine.outputs(workspace), ctx.engine.resources(workspace)
        if activity.kind == "destroy":
            vms = _vm_reports(ctx, run_id)
        store_engine_log(ctx, run_id, activity)

    moved = [False]  # this update moved the run to the capacity ladder's next rung

    def change(record: RunRecord) -> None:
        record.activities = [a for a in record.activities if a.id != activity.id] + [activity]
        if outputs is not None:
            if activity.kind == "apply":
                record.outputs = outputs
            record.resources = sorted(set(record.resources) | set(resources or []))
        if not activity.done:
            return
        if activity.kind == "apply":
            if activity.state == "COMPLETED" and record.state == S.APPLYING:
                record.enter(S.RUNNING, f"apply {activity.id} completed")
            elif activity.state == "FAILED":
                cause = f":\n{terraform_errors(activity.log_tail)}" if activity.log_tail else ""
                was = record.state
                error = ladder.after_failed_apply(  # None: on to the next rung
                    ctx.config,
                    record,
                    activity,
                    RunError("APPLY_FAILED", f"apply {activity.id} failed{cause}", activity.log_tail),
                )
                if error is not None:
                    record.fail(error, S.APPLY_FAILED, from_states=frozenset({S.APPLYING}))
                moved[0] = was == S.APPLYING and record.state == S.REQUESTED
        elif activity.kind == "destroy" and record.state == S.DESTROYING:
            if activity.state == "COMPLETED" and not resources:
                record.enter(S.DESTROYED, f"destroy {activity.id} completed; no resource left")
                record.vms = merge_reports(record.vms, vms)
                record.vm_seconds = vm_seconds(record.vms, datetime.fromisoformat(record.transitions[-1].at))
            else:
                left = f"; still present: {', '.join(resources)}" if resources else ""
                # Not DESTROYED, and a later destroy may get past it either way: the engine
                # said done but still holds resources, or its destroy job ran and failed
                # (a provider error, an agent still exiting after SIGKILL). A cause no retry
                # fixes (a refused key, a missing permission) is raised by the engine call
                # itself, not retried; these are, with backoff, up to MAX_DESTROY_ATTEMPTS.
                incomplete = activity.state == "COMPLETED"
                cause = f":\n{terraform_errors(activity.log_tail)}" if activity.state == "FAILED" and activity.log_tail else ""
                error = RunError(
                    "DESTROY_INCOMPLETE" if incomplete else "DESTROY_FAILED",
                    f"destroy {activity.id} {activity.state.lower()}{left}{cause}",
                    activity.log_tail,
                    retryable=True,
                )
                record.fail(error, S.DESTROY_FAILED)

    record = ctx.ledger.update(run_id, change)
    if moved[0]:
        return ladder.climb(ctx, record, apply_run)  # the capacity ladder moved it to its next rung
    if record.state == S.DESTROYED:
        workspace_lock(ctx, record.workspace).release(run_id)
        try:
            remove_credentials(ctx.storage, ctx.config.state_bucket, run_id)  # any a VM did not delete itself
        except EphemeraError as exc:
            log.warning("run %s: leftover credentials objects not deleted: %s", run_id, exc.message)
    return record


def store_engine_log(ctx: Context, run_id: str, activity: Activity) -> None:
    """Keep a finished activity's job log with the run's logs (the whole log where the
    engine can give it, else its tail); never in the way of recording the run."""
    engine = ctx.engine
    try:
        text = engine.activity_log(activity) if isinstance(engine, ActivityLogs) else activity.log_tail
        write_engine_log(
            ctx.storage,
            ctx.config.state_bucket,
            run_id,
            activity.id,
            activity.started_at,
            f"{activity.kind} {activity.id}: {activity.state}\n{text or ''}",
            ctx.scrubber,
        )
    except Exception as exc:  # noqa: BLE001 - the log is informative; the record is not
        log.warning(
            "run %s: the log of %s %s was not stored: %s",
            run_id,
            activity.kind,
            activity.id,
            ctx.scrubber.scrub(f"{type(exc).__name__}: {exc}"),
        )


def _vm_reports(ctx: Context, run_id: str) -> list[dict]:
    try:
        return vm_reports(ctx.storage, ctx.config.state_bucket, run_id)
    except EphemeraError:  # informative only: never block the run's end
        return []


def finish_run(ctx: Context, run_id: str, success: bool, marker: markers.Marker | None) -> RunRecord:
    """Record the workload's end (from its completion marker) and what the VMs reported."""
    vms = _vm_reports(ctx, run_id)

    def change(record: RunRecord) -> None:
        record.result = marker.to_dict() if marker is not None else {}
        if marker is None or not marker.boot:  # a bootstrap's failure marker has no task times
            record.vms = with_marker_times(merge_reports(record.vms, vms), marker)
        else:
            record.vms = merge_reports(record.vms, vms)
        if success:
            record.enter(S.SUCCEEDED, "completion marker written")
        elif marker is not None and marker.timed_out:  # killed at the hard deadline: it did not fail by itself
            record.fail(marker.run_error(), S.TIMED_OUT, "workload killed at the run's hard deadline")
        else:
            record.fail(
                marker.run_error() if marker is not None else markers.invalid("no marker").run_error(),
                S.FAILED,
                "completion marker written",
            )

    return ctx.ledger.update(run_id, change)


def destroy_run(ctx: Context, run_id: str, reason: str) -> RunRecord:
    """Destroy the run's workspace; DESTROYED once the engine confirms nothing is left."""
    return start_destroy(ctx, ctx.ledger.transition(run_id, S.DESTROYING, reason))


def start_destroy(ctx: Context, run: RunRecord) -> RunRecord:
    """Destroy the workspace of a run already recorded DESTROYING, and record the activity."""
    try:
        _check_owner(ctx, run)
        activity = _retry_busy(lambda: ctx.engine.destroy(run.workspace), _busy_budget(ctx, BUSY_RETRY_SECONDS))
    except Exception as exc:  # noqa: BLE001 - an engine crash must still leave a record
        return record_failure(ctx, run.run_id, RunError.from_exception(exc), S.DESTROY_FAILED)
    return record_activity(ctx, run.run_id, activity)


def _check_owner(ctx: Context, run: RunRecord) -> None:
    """Refuse to destroy a workspace that was last applied for another run still open."""
    engine = ctx.engine
    if not isinstance(engine, OrphanSweeper):
        return
    owner = engine.owner(run.workspace)
    if owner in (None, run.run_id):
        return
    try:
        other = ctx.ledger.get(owner)
    except RunNotFoundError:
        return  # leftovers of a run the ledger does not know: this run may destroy them
    if other.state != S.DESTROYED:
        raise EngineError(
            f"workspace '{run.workspace}' holds open run '{owner}', not '{run.run_id}'; "
            f"destroy that run instead (`ephemera invoke destroy run_id={owner}`)"
        )


def advance_run(ctx: Context, run: RunRecord) -> RunRecord:
    """Poll the run's in-flight engine activity, if any, and record what changed."""
    kind = {S.APPLYING: "apply", S.DESTROYING: "destroy"}.get(run.state)
    activity = run.last_activity(kind) if kind else None
    if activity is None or activity.done:
        return run
    return record_activity(ctx, run.run_id, ctx.engine.status(activity))


def _retry_busy(call, budget: float = BUSY_RETRY_SECONDS):
    """Retry a call while the workspace is busy (WorkspaceBusyError), with backoff."""
    deadline = time.monotonic() + budget
    delay = 0.5
    while True:
        try:
            return call()
        except WorkspaceBusyError:
            if time.monotonic() + delay > deadline:
                raise
            log.info("workspace busy; retrying in %.1fs", delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
