"""Applying and destroying a run's workspace through the engine, and recording each step.

Every state change goes through the ledger with a reason. A destroy is recorded
DESTROYED only after the engine reports that the workspace state holds no resource.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone

from ephemera import layout
from ephemera.context import Context
from ephemera.errors import EphemeraError, NoSuchKeyError, WorkspaceBusyError
from ephemera.lifecycle.request import workspace_lock
from ephemera.model.runs import Activity, RunRecord, RunState
from ephemera.storage import storage_spec

log = logging.getLogger("ephemera.lifecycle")
S = RunState
BUSY_RETRY_SECONDS = 60.0


def stack_variables(ctx: Context, run: RunRecord) -> tuple[dict, dict]:
    """The Terraform variables of a run: (plain, secure)."""
    config = ctx.config
    deadline = datetime.fromisoformat(run.hard_deadline)
    plain = {
        **config["workspace"]["variables"],
        "run_id": run.run_id,
        "workspace": run.workspace,
        "worker_count": run.job["worker_count"],
        "job_key": layout.job_key(run.run_id),
        "state_bucket": config.state_bucket,
        "storage_backend": config["storage"]["backend"],
        "hard_deadline": run.hard_deadline,
        "hard_timeout_seconds": max(60, int((deadline - datetime.now(timezone.utc)).total_seconds())),
    }
    secure = {}
    if config["ibm"]["iam_api_key"]:
        secure["ibmcloud_api_key"] = config["ibm"]["iam_api_key"]  # the IBM provider, outside Schematics
    storage_plain, storage_secure = storage_spec(config["storage"]["backend"]).vm_variables(config)  # the VMs' storage access
    plain.update(storage_plain)
    secure.update(storage_secure)
    return plain, secure


def apply_run(ctx: Context, run: RunRecord) -> RunRecord:
    """Apply the run's workspace. Returns the record after the apply started or ended."""
    run = ctx.ledger.transition(run.run_id, S.APPLYING, "applying workspace")
    plain, secure = stack_variables(ctx, run)
    try:
        activity = _retry_busy(lambda: ctx.engine.apply(run, plain, secure))
    except EphemeraError as exc:
        return _apply_failed(ctx, run.run_id, exc.to_dict(), getattr(exc, "log_tail", ""))
    except Exception as exc:  # noqa: BLE001 - an engine crash must still leave a record
        return _apply_failed(ctx, run.run_id, {"code": "ENGINE_ERROR", "message": ctx.scrubber.scrub(f"{type(exc).__name__}: {exc}")}, "")
    return record_activity(ctx, run.run_id, activity)


def _apply_failed(ctx: Context, run_id: str, error: dict, log_tail: str) -> RunRecord:
    def change(record: RunRecord) -> None:
        record.error = {**error, "log_tail": ctx.scrubber.scrub(log_tail)}
        if record.state == S.APPLYING:
            record.enter(S.APPLY_FAILED, error.get("message", "apply failed"))

    return ctx.ledger.update(run_id, change)


def record_activity(ctx: Context, run_id: str, activity: Activity) -> RunRecord:
    """Store an activity's latest state and move the run accordingly."""
    outputs = resources = None
    if activity.done:
        run = ctx.ledger.get(run_id)
        outputs, resources = ctx.engine.outputs(run), ctx.engine.resources(run)

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
                record.error = {"code": "APPLY_FAILED", "message": f"apply {activity.id} failed", "log_tail": activity.log_tail}
                if record.state == S.APPLYING:
                    record.enter(S.APPLY_FAILED, f"apply {activity.id} failed")
        elif activity.kind == "destroy" and record.state == S.DESTROYING:
            if activity.state == "COMPLETED" and not resources:
                record.enter(S.DESTROYED, f"destroy {activity.id} completed; no resource left")
            else:
                left = f"; still present: {', '.join(resources)}" if resources else ""
                # the engine said done but its state still holds resources: not DESTROYED
                code = "DESTROY_INCOMPLETE" if activity.state == "COMPLETED" else "DESTROY_FAILED"
                record.error = {"code": code, "message": f"destroy {activity.id} {activity.state.lower()}{left}", "log_tail": activity.log_tail}
                record.attempts["destroy"] = record.attempts.get("destroy", 0) + 1
                record.enter(S.DESTROY_FAILED, record.error["message"])

    record = ctx.ledger.update(run_id, change)
    if record.state == S.DESTROYED:
        workspace_lock(ctx, record.workspace).release(run_id)
    return record


def finish_run(ctx: Context, run_id: str, success: bool, marker: dict | None) -> RunRecord:
    """Record the workload's end (from its completion marker)."""

    def change(record: RunRecord) -> None:
        record.result = ctx.scrubber.scrub_obj(marker or {})
        if not success:
            err = (marker or {}).get("error") or {}
            record.error = ctx.scrubber.scrub_obj({"code": "WORKLOAD_FAILED", "message": f"{err.get('type', 'Error')}: {err.get('message', '')}",
                                                   "log_tail": (marker or {}).get("log_tail", "")})
        record.enter(S.SUCCEEDED if success else S.FAILED, "completion marker written")

    return ctx.ledger.update(run_id, change)


def destroy_run(ctx: Context, run_id: str, reason: str) -> RunRecord:
    """Destroy the run's workspace; DESTROYED once the engine confirms nothing is left."""
    run = ctx.ledger.transition(run_id, S.DESTROYING, reason)
    try:
        activity = _retry_busy(lambda: ctx.engine.destroy(run))
    except EphemeraError as exc:
        return _destroy_failed(ctx, run_id, exc.to_dict(), getattr(exc, "log_tail", ""))
    except Exception as exc:  # noqa: BLE001 - an engine crash must still leave a record
        error = {"code": "ENGINE_ERROR", "message": ctx.scrubber.scrub(f"{type(exc).__name__}: {exc}"), "retryable": False}
        return _destroy_failed(ctx, run_id, error, "")
    return record_activity(ctx, run_id, activity)


def _destroy_failed(ctx: Context, run_id: str, error: dict, log_tail: str) -> RunRecord:
    def change(record: RunRecord) -> None:
        record.error = {**error, "log_tail": ctx.scrubber.scrub(log_tail)}
        record.attempts["destroy"] = record.attempts.get("destroy", 0) + 1
        record.enter(S.DESTROY_FAILED, error["message"])

    return ctx.ledger.update(run_id, change)


def advance_run(ctx: Context, run: RunRecord) -> RunRecord:
    """Poll the run's in-flight engine activity, if any, and record what changed."""
    kind = {S.APPLYING: "apply", S.DESTROYING: "destroy"}.get(run.state)
    activity = run.last_activity(kind) if kind else None
    if activity is None or activity.done:
        return run
    return record_activity(ctx, run.run_id, ctx.engine.status(run, activity))


def read_marker(ctx: Context, bucket: str, key: str) -> dict:
    try:
        return json.loads(ctx.storage.get(bucket, key))
    except NoSuchKeyError:
        raise
    except ValueError:
        return {"status": "unknown", "error": {"type": "MarkerError", "message": f"marker '{key}' is not JSON"}}


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
