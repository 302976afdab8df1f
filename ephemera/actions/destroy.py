"""Action ``destroy``: the write of a completion marker ends its run.

It reads the run id from ``<output_prefix>/<run_id>/_SUCCESS.json`` (or
``_FAILURE.json``; :mod:`ephemera.model.marker`), checks it against the ledger, records
SUCCEEDED or FAILED, destroys the workspace and records DESTROYED once nothing is
left. Any other write is ignored, with the ``reason`` and its ``reason_code`` in the
result. A manual invoke with ``run_id`` destroys that run.

A destroy that failed is an error result naming the run and its state. A destroy that
did its job after the workload failed is not: the action succeeded, and its result
says the run's ``outcome`` (FAILED) with the workload's error as ``run_error``.
A destroy by hand of a run whose marker is already written ends it as the marker
says; of a run still working, it says the workload was stopped before it ended. Invoked by a marker-scan alarm (the
``ephemera_scan`` parameter, :mod:`ephemera.actions.marker_scan`), it handles every
marker the scan finds, within the invocation's time budget, as if each had been
delivered by a bucket-write feed.
"""

from __future__ import annotations

from ephemera.actionkit import ReasonCode, ignored, run_action, run_failed
from ephemera.context import Context
from ephemera.errors import NoSuchKeyError, ParamError, RunNotFoundError, StateConflictError
from ephemera.lifecycle import destroy_run, finish_run, start_destroy
from ephemera.model import marker as markers
from ephemera.model.runids import validate_run_id
from ephemera.model.runs import RunRecord, RunState
from ephemera.events.formats import parse_event
from ephemera.actions.marker_scan import SCAN_PARAM, marker_writes, scan_filter

S = RunState
R = ReasonCode
SCAN_RESERVE_SECONDS = 30.0  # budget one more marker's destroy needs; the rest waits for the next scan


def _not_open(run: RunRecord, why: str = "") -> dict:
    """Ignored: the run is past the point where this destroy could do anything."""
    code = {S.DESTROYED: R.ALREADY_DESTROYED, S.DESTROYING: R.BEING_DESTROYED}.get(run.state, R.ALREADY_ENDED)
    words = (
        f"run '{run.run_id}' is being destroyed" if run.state == S.DESTROYING else f"run '{run.run_id}' is already {run.state}"
    )
    return ignored(code, words + why, run_id=run.run_id, state=str(run.state))


def handle(ctx: Context, params: dict) -> dict:
    if params.get(SCAN_PARAM) is not None:
        return _scan(ctx, params)
    event = parse_event(params)
    if event.kind != "object_write":
        run_id = event.payload.get("run_id")
        if run_id is None:
            return ignored(R.NO_RUN_ID, f"a {event.kind} event names no completion marker; pass run_id to destroy a run by hand")
        return _destroy_by_hand(ctx, validate_run_id(run_id))
    parsed = markers.parse_key(event.key)
    if parsed is None:
        return ignored(R.NOT_A_MARKER, f"'{event.key}' is not a completion marker ({' or '.join(markers.NAMES)})", key=event.key)
    run_id, success = parsed.run_id, parsed.success
    try:
        run = ctx.ledger.get(validate_run_id(run_id, "key"))
    except (RunNotFoundError, ParamError):
        return ignored(R.UNKNOWN_RUN, f"no run '{run_id}' in the ledger", key=event.key, run_id=run_id)
    # where this run's job put its outputs (the config may have changed since)
    bucket = run.job.output_bucket if run.job else ctx.config.output_bucket
    expected = run.job.output_prefix if run.job else ""
    if event.bucket != bucket or not event.key.startswith(expected) or "/" in event.key[len(expected) :]:
        return ignored(
            R.OUTSIDE_OUTPUT_PREFIX,
            f"marker '{event.bucket}/{event.key}' is outside the run's output location '{bucket}/{expected}'",
            key=event.key,
        )
    if run.state not in (S.REQUESTED, S.APPLYING, S.RUNNING):
        return _not_open(run)
    try:
        marker = markers.read(ctx.storage, event.bucket, event.key)
    except NoSuchKeyError:
        return ignored(R.MARKER_GONE, f"marker '{event.key}' no longer exists", run_id=run_id)
    success = success and marker.valid  # an unreadable _SUCCESS.json is no success
    try:
        ended = finish_run(ctx, run_id, success, marker).state  # SUCCEEDED, FAILED or TIMED_OUT
        run = destroy_run(ctx, run_id, f"completion marker {markers.name(success)}")
    except StateConflictError:  # a concurrent delivery of the same marker (or the reaper) got there first
        return _not_open(ctx.ledger.get(run_id), ": handled by another invocation")
    return _outcome(run, workload_failed=not success, outcome=str(ended), workload="succeeded" if success else "failed")


def _outcome(run: RunRecord, workload_failed: bool = False, **extra) -> dict:
    """Success when the teardown is under way or done, whatever the workload did (its
    failure is the run's ``outcome`` and ``run_error``, not this action's); an error
    result when the teardown failed."""
    if run.state == S.DESTROY_FAILED:
        return run_failed(run, **extra)
    if workload_failed:
        extra = {"outcome": str(S.FAILED), **({"run_error": run.error.summary()} if run.error else {}), **extra}
    return {"run_id": run.run_id, "state": str(run.state), **extra}


def _scan(ctx: Context, params: dict) -> dict:
    """Handle every completion marker the scan finds, as a feed's write events would be."""
    scan = scan_filter(params[SCAN_PARAM])
    base = {k: v for k, v in params.items() if k != SCAN_PARAM and not k.startswith("ephemera_")}
    handled, left = [], 0
    for write in marker_writes(ctx, scan, params.get("ephemera_trigger")):
        if not ctx.budget.allows(SCAN_RESERVE_SECONDS):
            left += 1
            continue
        result = handle(ctx, {**base, **write})
        handled.append({"key": write["key"], **result})
    failed = [r for r in handled if "error" in r]
    summary = {"scanned": f"{scan.bucket}/{scan.prefix}*", "markers": handled, "left_for_next_scan": left}
    if failed:
        return {"error": failed[0]["error"], **summary}
    return summary


def _destroy_by_hand(ctx: Context, run_id: str) -> dict:
    """Claim the run for this destroy in one change under its lock (a concurrent manual
    destroy then finds it DESTROYING), then destroy its workspace."""
    claimed = []

    def claim(record: RunRecord) -> None:
        if record.state in (S.DESTROYED, S.DESTROYING):
            return
        if record.state in (S.APPLYING, S.RUNNING):
            record.enter(S.FAILED, "destroyed by hand before the workload ended")
        record.enter(S.DESTROYING, "destroy requested by hand")
        claimed.append(True)

    run = ctx.ledger.get(run_id)  # an unknown run: RUN_NOT_FOUND, and no lock taken for it
    if run.state in (S.DESTROYED, S.DESTROYING):
        return _not_open(run)
    written = _written_marker(ctx, run)
    if written is not None:  # the workload ended already: end the run as its marker says
        return handle(ctx, {"ephemera_kind": "object_write", "bucket": written[0], "key": written[1]})
    before = run.state
    run = ctx.ledger.update(run_id, claim)
    if not claimed:
        return _not_open(run)
    result = _outcome(start_destroy(ctx, run))
    if before in (S.APPLYING, S.RUNNING):
        result["note"] = (
            f"run '{run_id}' was {before} when destroyed by hand: its workload did not finish "
            "(no completion marker), so the run is recorded FAILED"
        )
    return result


def _written_marker(ctx: Context, run: RunRecord) -> tuple[str, str] | None:
    """(bucket, key) of the run's completion marker when its workload wrote one."""
    if run.job is None or run.state not in (S.APPLYING, S.RUNNING):
        return None
    for success in (True, False):
        key = markers.key(run.job.output_prefix, success=success)
        try:
            ctx.storage.head(run.job.output_bucket, key)
        except NoSuchKeyError:
            continue
        return run.job.output_bucket, key
    return None


def main(params: dict) -> dict:
    return run_action("destroy", params, handle)
