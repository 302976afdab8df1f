"""Action ``destroy``: the write of a completion marker ends its run.

It reads the run id from ``<output_prefix>/<run_id>/_SUCCESS.json`` (or
``_FAILURE.json``), checks it against the ledger, records SUCCEEDED or FAILED, destroys
the workspace and records DESTROYED once nothing is left. Any other write is ignored
with the reason in the result. A manual invoke with ``run_id`` destroys that run.
"""

from __future__ import annotations

from ephemera import layout
from ephemera.actionkit import run_action
from ephemera.context import Context
from ephemera.errors import NoSuchKeyError, ParamError, RunNotFoundError, StateConflictError
from ephemera.lifecycle import destroy_run, finish_run, read_marker
from ephemera.model.runids import validate_run_id
from ephemera.model.runs import RunState
from ephemera.triggers.events import parse_event

S = RunState


def _ignored(reason: str, **extra) -> dict:
    return {"ignored": True, "reason": reason, **extra}


def handle(ctx: Context, params: dict) -> dict:
    event = parse_event(params)
    if event.kind != "object_write":
        run_id = event.payload.get("run_id")
        if run_id is None:
            return _ignored(f"a {event.kind} event names no completion marker; pass run_id to destroy a run by hand")
        return _destroy_by_hand(ctx, validate_run_id(run_id))
    parsed = layout.parse_marker_key(event.key)
    if parsed is None:
        return _ignored(f"'{event.key}' is not a completion marker ({' or '.join(layout.MARKERS)})", key=event.key)
    _prefix, run_id, success = parsed
    try:
        run = ctx.ledger.get(validate_run_id(run_id, "key"))
    except (RunNotFoundError, ParamError):
        return _ignored(f"no run '{run_id}' in the ledger", key=event.key, run_id=run_id)
    # where this run's job put its outputs (the config may have changed since)
    bucket, expected = run.job.get("output_bucket", ctx.config.output_bucket), run.job.get("output_prefix", "")
    if event.bucket != bucket or not event.key.startswith(expected) or "/" in event.key[len(expected):]:
        return _ignored(f"marker '{event.bucket}/{event.key}' is outside the run's output location '{bucket}/{expected}'", key=event.key)
    if run.state not in (S.REQUESTED, S.APPLYING, S.RUNNING):
        return _ignored(f"run '{run_id}' is already {run.state}", run_id=run_id, state=str(run.state))
    try:
        marker = read_marker(ctx, event.bucket, event.key)
    except NoSuchKeyError:
        return _ignored(f"marker '{event.key}' no longer exists", run_id=run_id)
    try:
        run = finish_run(ctx, run_id, success, marker)
        run = destroy_run(ctx, run_id, f"completion marker {layout.SUCCESS_MARKER if success else layout.FAILURE_MARKER}")
    except StateConflictError:  # a concurrent delivery of the same marker (or the reaper) got there first
        run = ctx.ledger.get(run_id)
        return _ignored(f"run '{run_id}' is already {run.state}: handled by another invocation", run_id=run_id, state=str(run.state))
    return {"run_id": run_id, "state": str(run.state), "workload": "succeeded" if success else "failed"}


def _destroy_by_hand(ctx: Context, run_id: str) -> dict:
    run = ctx.ledger.get(run_id)
    if run.state == S.DESTROYED:
        return _ignored(f"run '{run_id}' is already DESTROYED", run_id=run_id, state=str(run.state))
    if run.state in (S.DESTROYING,):
        return _ignored(f"run '{run_id}' is being destroyed", run_id=run_id, state=str(run.state))
    if run.state in (S.APPLYING, S.RUNNING):
        ctx.ledger.transition(run_id, S.FAILED, "destroyed by hand before the workload ended")
    run = destroy_run(ctx, run_id, "destroy requested by hand")
    return {"run_id": run_id, "state": str(run.state)}


def main(params: dict) -> dict:
    return run_action("destroy", params, handle)
