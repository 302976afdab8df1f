"""Requesting a run: one run per event, one open run per workspace.

An event becomes a run record (REQUESTED) and the job spec its VMs read, under the
workspace lock; a duplicate delivery finds the existing run. The run id comes from
the event (:mod:`ephemera.model.runids`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from ephemera import layout
from ephemera.config import WORKSPACE_NAME_FIX, is_workspace_name
from ephemera.context import Context
from ephemera.engines import engine_spec
from ephemera.errors import EphemeraError, ParamError, RunNotFoundError
from ephemera.locking.workspace_lock import WorkspaceLock
from ephemera.model.events import Event
from ephemera.model.jobs import JobSpec, save_job
from ephemera.model.runids import run_id_for
from ephemera.model.runs import RunError, RunRecord, RunState
from ephemera.runkeys import run_key
from ephemera.timeutil import now_utc

log = logging.getLogger("ephemera.lifecycle")
S = RunState


@dataclass
class RequestOutcome:
    run: RunRecord | None  # the run created, or the existing one for a duplicate
    created: bool  # False for a duplicate event or a busy workspace
    reason: str = ""  # why nothing was created
    duplicate: bool = False  # the event was already handled (or is being handled)
    run_id: str = ""  # the event's run id (also for a duplicate whose record is not written yet)


def _workload_params(config, event: Event) -> dict:
    extra = event.payload.get("params", {})
    if not isinstance(extra, dict):
        raise ParamError("params", f"expected an object, got {type(extra).__name__}", "pass workload parameters as a JSON object")
    return {**config["workload"]["params"], **extra}


def _worker_count(config) -> int:
    return config["workspace"]["variables"].get("worker_count", 1)  # validated with the config


def _workspace(config, event: Event) -> str:
    """The workspace: ``config.workspace.name``, or a ``workspace`` parameter of the event
    (one runtime, many workspaces: e.g. a rule per workspace)."""
    name = event.payload.get("workspace")
    if name is None:
        return config["workspace"]["name"]
    engine = engine_spec(config["engine"]["backend"])
    if engine.one_workspace_per_config and name != config["workspace"]["name"]:
        raise ParamError("workspace", f"'{name}' is not this config's workspace '{config['workspace']['name']}'",
                         f"with the {engine.name} engine each workspace needs its own config")
    if not is_workspace_name(name):
        raise ParamError("workspace", f"{name!r} is not a workspace name", WORKSPACE_NAME_FIX)
    return name


def workspace_lock(ctx: Context, workspace: str) -> WorkspaceLock:
    """The workspace's lock; a lock without a run record is "in progress" for one action timeout."""
    return WorkspaceLock(ctx.storage, ctx.config.state_bucket, workspace, grace=ctx.config["timeouts"]["action"])


def _duplicate(ctx: Context, run_id: str, why: str = "") -> RequestOutcome:
    try:
        run = ctx.ledger.get(run_id)
    except RunNotFoundError:
        run = None
    return RequestOutcome(run, False, why or f"duplicate event: run '{run_id}' already exists", duplicate=True, run_id=run_id)


def request_run(ctx: Context, event: Event) -> RequestOutcome:
    """Create the run record for an event, at most once per event and one open run per workspace.

    Order matters: the workspace lock first (one open run per workspace), then the
    record (``put_if_absent``: one run per event), then the job spec the VMs read. A
    crash between any two steps leaves a lock or record that the reaper ends."""
    config = ctx.config
    workspace = _workspace(config, event)
    run_id = run_id_for(event, workspace)
    if ctx.ledger.exists(run_id):
        return _duplicate(ctx, run_id)
    now = now_utc()
    hard = config["timeouts"]["hard"]
    deadline = now + timedelta(seconds=hard)
    job = JobSpec(
        run_id=run_id,
        workspace=workspace,
        entry=config["workload"]["entry"],
        params=_workload_params(config, event),
        state_bucket=config.state_bucket,
        output_bucket=config.output_bucket,
        output_prefix=layout.output_prefix(config["workload"]["output_prefix"], run_id),
        worker_count=_worker_count(config),
        hard_deadline=deadline.isoformat(),
    )
    lock = workspace_lock(ctx, workspace)
    got = lock.acquire(run_id, expires=deadline + timedelta(seconds=config["timeouts"]["soft"]), is_open=run_is_open(ctx))
    if not got.acquired:
        if got.holder == run_id:
            return _duplicate(ctx, run_id, f"duplicate event: run '{run_id}' is being requested by another invocation")
        return RequestOutcome(None, False, f"workspace '{workspace}' is busy with run '{got.holder}'", run_id=run_id)
    record = RunRecord(run_id=run_id, workspace=workspace, engine=config["engine"]["backend"],
                       hard_deadline=deadline.isoformat(), event=event.to_dict(), job=job)
    try:
        if not ctx.ledger.create(record):
            lock.release(run_id, got.token)
            return _duplicate(ctx, run_id)
        save_job(ctx.storage, config.state_bucket, job, run_key(config, run_id))  # signed: VMs check it
    except Exception as exc:
        if not ctx.ledger.exists(run_id):
            lock.release(run_id, got.token)
        else:
            _end_unapplied(ctx, run_id, lock, got.token, exc)
        raise
    except BaseException:
        if not ctx.ledger.exists(run_id):
            lock.release(run_id, got.token)
        raise
    return RequestOutcome(record, True, run_id=run_id)


def _end_unapplied(ctx: Context, run_id: str, lock: WorkspaceLock, token: str, exc: Exception) -> None:
    """The record was written but the job spec was not: nothing was applied, so the run
    ends now (its error recorded, DESTROYED) and its workspace is free at once, rather
    than held until the reaper finds it stalled. If storage refuses this too, the
    reaper still ends it."""
    why = "the job spec was not stored; nothing was applied"
    try:
        ctx.ledger.update(run_id, lambda record: record.fail(RunError.from_exception(exc), S.APPLY_FAILED, why,
                                                             from_states=frozenset({S.REQUESTED})))
        ctx.ledger.transition(run_id, S.DESTROYING, why)
        ctx.ledger.transition(run_id, S.DESTROYED, "nothing was created: the engine was never called")
        lock.release(run_id, token)
    except Exception as again:  # noqa: BLE001 - the first error is the one to report
        log.warning("run %s: not ended after its failed request (the reaper will): %s", run_id,
                    ctx.scrubber.scrub(getattr(again, "message", None) or f"{type(again).__name__}: {again}"))


def run_is_open(ctx: Context):
    """For the workspace lock: True (holds resources), False (DESTROYED), None (no record)."""

    def is_open(run_id: str) -> bool | None:
        try:
            return ctx.ledger.get(run_id).state != S.DESTROYED
        except RunNotFoundError:
            return None
        except EphemeraError:
            return True  # cannot tell: never break a lock on a storage error

    return is_open
