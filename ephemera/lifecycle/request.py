"""Requesting a run: one run per event, one open run per workspace.

An event becomes a run record (REQUESTED) and the job spec its VMs read, under the
workspace lock. The run id is random (:mod:`ephemera.model.runids`); a request never
chooses it. A duplicate delivery finds the run through the event's claim
(:mod:`ephemera.lifecycle.event_claims`). A run's prefixes must be empty before its
record is created: anything there was planted, and the request is refused.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from ephemera import layout
from ephemera.config import WORKSPACE_NAME_FIX, is_workspace_name
from ephemera.context import Context
from ephemera.engines import engine_spec
from ephemera.errors import EphemeraError, NoSuchKeyError, ParamError, RunNotFoundError, RunPrefixNotEmptyError, StorageError
from ephemera.lifecycle.event_claims import EventClaims
from ephemera.locking.workspace_lock import WorkspaceLock
from ephemera.model.events import Event
from ephemera.model.jobs import JobSpec, save_job
from ephemera.model.runids import event_identity, new_run_id, refuse_chosen_run_id
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
    run_id: str = ""  # the run's id (also for a duplicate whose record is not written yet)


def _workload_params(config, event: Event) -> dict:
    extra = event.payload.get("params", {})
    if not isinstance(extra, dict):
        raise ParamError("params", f"expected an object, got {type(extra).__name__}", "pass workload parameters as a JSON object")
    return {**config.workload.params, **extra}


def _worker_count(config) -> int:
    return config.workspace.variables.get("worker_count", 1)  # validated with the config


def _workspace(config, event: Event) -> str:
    """The workspace: ``config.workspace.name``, or a ``workspace`` parameter of the event
    (one runtime, many workspaces: e.g. a rule per workspace)."""
    name = event.payload.get("workspace")
    if name is None:
        return config.workspace.name
    engine = engine_spec(config.engine.backend)
    if engine.one_workspace_per_config and name != config.workspace.name:
        raise ParamError(
            "workspace",
            f"'{name}' is not this config's workspace '{config.workspace.name}'",
            f"with the {engine.name} engine each workspace needs its own config",
        )
    if not is_workspace_name(name):
        raise ParamError("workspace", f"{name!r} is not a workspace name", WORKSPACE_NAME_FIX)
    return name


def workspace_lock(ctx: Context, workspace: str) -> WorkspaceLock:
    """The workspace's lock; a lock without a run record is "in progress" for one action timeout."""
    return WorkspaceLock(ctx.storage, ctx.config.state_bucket, workspace, grace=ctx.config.timeouts.action)


def _duplicate(ctx: Context, run_id: str, why: str = "") -> RequestOutcome:
    try:
        run = ctx.ledger.get(run_id)
    except RunNotFoundError:
        run = None
    return RequestOutcome(run, False, why or f"duplicate event: run '{run_id}' already exists", duplicate=True, run_id=run_id)


CLAIM_WAIT = 20.0  # seconds a delivery waits for another invocation's claim of the same event to resolve
CLAIM_POLL = 0.25


def event_claims(ctx: Context) -> EventClaims:
    """The event claims; a claim without a run record is "in progress" for one action timeout."""
    return EventClaims(ctx.storage, ctx.config.state_bucket, grace=ctx.config.timeouts.action)


def request_run(ctx: Context, event: Event) -> RequestOutcome:
    """Create the run record for an event, at most once per event and one open run per workspace.

    Order matters: the event's claim first (one run per event), then the workspace
    lock (one open run per workspace), then the record, then the job spec the VMs
    read. A request that creates no record gives the claim back, so a redelivery
    may try again; a concurrent delivery waits (up to ``CLAIM_WAIT``) to see which.
    A crash between any two steps leaves a claim (taken over after
    the action timeout), a lock or a record that the reaper ends."""
    refuse_chosen_run_id(event)
    workspace = _workspace(ctx.config, event)
    params = _workload_params(ctx.config, event)  # every input checked before anything is written
    now = now_utc()
    run_id = new_run_id(workspace, now)
    identity = event_identity(event, workspace, now)
    if identity is None:  # a manual request without idempotency_key: always a new run
        return _request(ctx, event, workspace, run_id, params)
    claims = event_claims(ctx)
    waited_until = time.monotonic() + CLAIM_WAIT
    while True:
        claim = claims.claim(identity, run_id, ctx.ledger.exists)
        if claim.won:
            break
        if not claim.run_id:  # contended for every attempt, and the last claim unreadable
            raise StorageError(
                f"the claim of this event under '{layout.event_claim_prefix(identity)}' could not be "
                "taken or read; deliver the event again",
                retryable=True,
            )
        if ctx.ledger.exists(claim.run_id):
            return _duplicate(ctx, claim.run_id)
        holder = _busy_with(ctx, workspace, claim.run_id)
        if holder is not None:  # its claimer cannot get the workspace either: it gives the event back
            return RequestOutcome(None, False, f"workspace '{workspace}' is busy with run '{holder}'", run_id=claim.run_id)
        # its claimer is still at work: wait for its record (a duplicate) or its give-back
        if time.monotonic() >= waited_until or not ctx.budget.allows(CLAIM_WAIT):
            return _duplicate(
                ctx, claim.run_id, f"duplicate event: run '{claim.run_id}' is being requested by another invocation"
            )
        time.sleep(CLAIM_POLL)
    try:
        outcome = _request(ctx, event, workspace, run_id, params)
    except RunPrefixNotEmptyError:  # a planted record is no run of this event
        claims.release(identity, claim)
        raise
    except BaseException:
        if not ctx.ledger.exists(run_id):
            claims.release(identity, claim)
        raise
    if not outcome.created:
        claims.release(identity, claim)
    return outcome


def _busy_with(ctx: Context, workspace: str, run_id: str) -> str | None:
    """The open run holding ``workspace``, if it is another run than ``run_id``."""
    lock = workspace_lock(ctx, workspace)
    body = lock.holder()
    if body and body.get("run_id") != run_id and not lock.is_free(body, run_is_open(ctx)):
        return body.get("run_id")
    return None


def _request(ctx: Context, event: Event, workspace: str, run_id: str, params: dict) -> RequestOutcome:
    """Create run ``run_id`` for ``event``: check its prefixes, lock, record, job spec."""
    config = ctx.config
    now = now_utc()
    hard = config.timeouts.hard
    deadline = now + timedelta(seconds=hard)
    job = JobSpec(
        run_id=run_id,
        workspace=workspace,
        entry=config.workload.entry,
        params=params,
        state_bucket=config.state_bucket,
        output_bucket=config.output_bucket,
        output_prefix=layout.output_prefix(config.workload.output_prefix, run_id),
        worker_count=_worker_count(config),
        hard_deadline=deadline.isoformat(),
        event={
            k: v for k, v in event.to_dict().items() if k != "payload"
        },  # the params already carry what the workload needs of it
    )
    refuse_planted(ctx, job)
    lock = workspace_lock(ctx, workspace)
    got = lock.acquire(run_id, expires=deadline + timedelta(seconds=config.timeouts.soft), is_open=run_is_open(ctx))
    if not got.acquired:
        return RequestOutcome(None, False, f"workspace '{workspace}' is busy with run '{got.holder}'", run_id=run_id)
    record = RunRecord(
        run_id=run_id,
        workspace=workspace,
        engine=config.engine.backend,
        hard_deadline=deadline.isoformat(),
        event=event.to_dict(),
        job=job,
    )
    try:
        created = ctx.ledger.create(record)
    except BaseException:
        if not ctx.ledger.exists(run_id):
            lock.release(run_id, got.token)
        raise
    if not created:  # planted since refuse_planted() looked
        lock.release(run_id, got.token)
        raise _refusal(run_id, [f"{config.state_bucket}/{layout.run_key(run_id)}"])
    # a crash from here leaves a record without job spec: the reaper ends it (the action died);
    # a failed write ends it now (nothing was applied) and frees the workspace
    try:
        save_job(ctx.storage, config.state_bucket, job, run_key(config, run_id))  # signed: VMs check it
    except Exception as exc:
        _end_unapplied(ctx, run_id, lock, got.token, exc)
        raise
    return RequestOutcome(record, True, run_id=run_id)


def _end_unapplied(ctx: Context, run_id: str, lock: WorkspaceLock, token: str, exc: Exception) -> None:
    """The record was written but the job spec was not: nothing was applied, so the run
    ends now (its error recorded, DESTROYED) and its workspace is free at once, rather
    than held until the reaper finds it stalled. If storage refuses this too, the
    reaper still ends it."""
    why = "the job spec was not stored; nothing was applied"
    try:
        ctx.ledger.update(
            run_id,
            lambda record: record.fail(RunError.from_exception(exc), S.APPLY_FAILED, why, from_states=frozenset({S.REQUESTED})),
        )
        ctx.ledger.transition(run_id, S.DESTROYING, why)
        ctx.ledger.transition(run_id, S.DESTROYED, "nothing was created: the engine was never called")
        lock.release(run_id, token)
    except Exception as again:  # noqa: BLE001 - the first error is the one to report
        log.warning(
            "run %s: not ended after its failed request (the reaper will): %s",
            run_id,
            ctx.scrubber.scrub(getattr(again, "message", None) or f"{type(again).__name__}: {again}"),
        )


PLANTED_SHOWN = 5  # objects a refusal names per prefix


def refuse_planted(ctx: Context, job: JobSpec) -> None:
    """Refuse (RUN_PREFIX_NOT_EMPTY, logged as an error) when anything exists under the
    new run's prefixes: its id is random and not yet written anywhere but its event
    claim, so whatever is there was planted for the run to use (a pickle in its job
    queue, a record, a job spec). Nothing is deleted: the operator inspects it."""
    bucket, run_id = job.state_bucket, job.run_id
    found = []
    for prefix in layout.run_state_prefixes(run_id):
        if not prefix.endswith("/"):  # one key: a listing of its folder could be long
            try:
                ctx.storage.head(bucket, prefix)
                found.append(f"{bucket}/{prefix}")
            except NoSuchKeyError:
                pass
            continue
        found += [f"{bucket}/{o.key}" for o in itertools.islice(ctx.storage.list(bucket, prefix), PLANTED_SHOWN)]
    outputs = ctx.storage.list(job.output_bucket, job.output_prefix)
    found += [f"{job.output_bucket}/{o.key}" for o in itertools.islice(outputs, PLANTED_SHOWN)]
    if found:
        raise _refusal(run_id, found)


def _refusal(run_id: str, found: list[str]) -> RunPrefixNotEmptyError:
    exc = RunPrefixNotEmptyError(run_id, found)
    log.error("SECURITY: %s", exc.message)  # keys are shown with repr: a planted name forges no line
    return exc


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
