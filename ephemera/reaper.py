"""The reaper: nothing outlives its hard timeout, whatever failed.

One pass looks at every open run and decides, from its state and times alone, what
it needs:

- APPLYING / DESTROYING with an in-flight engine activity: poll it;
- REQUESTED or APPLYING with no activity in flight for longer than the action
  timeout (the action died), or APPLYING past ``timeouts.apply``: APPLY_FAILED, destroy;
- RUNNING whose completion marker exists (its bucket event was lost): finish, destroy;
- any run past its hard deadline before it ended: TIMED_OUT, destroy;
- TIMED_OUT and APPLY_FAILED: destroy;
- SUCCEEDED / FAILED not destroyed within ``timeouts.soft``: destroy;
- DESTROYING with nothing in flight for longer than the action timeout: the destroy
  died; record DESTROY_FAILED and retry it;
- DESTROY_FAILED: retry with exponential backoff, only when the failure is a named
  transient one (see :func:`is_transient`), up to ``MAX_DESTROY_ATTEMPTS``.

Before the rules, :func:`reconcile` compares the engine's state with the ledger:
resources an open run's record does not name (a crash between the engine creating
them and the ledger recording it) are written into that record, so its rules
destroy them; resources in a workspace whose owning run is DESTROYED or unknown,
with no open run on the workspace, are destroyed at once under the workspace lock.

Each decision is returned with its reason, and the reason is stamped in the record.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

from ephemera import layout
from ephemera.context import Context
from ephemera.errors import EphemeraError, NoSuchKeyError, StateConflictError
from ephemera.lifecycle import _is_open, advance_run, destroy_run, finish_run, read_marker, workspace_lock
from ephemera.runs import RunRecord, RunState

log = logging.getLogger("ephemera.reaper")
S = RunState
MAX_DESTROY_ATTEMPTS = 8
BACKOFF_BASE = 30.0  # seconds before the first destroy retry; doubles each attempt
BACKOFF_MAX = 3600.0
# Failures worth retrying: provider throttling and outages, network faults, locks.
TRANSIENT = re.compile(
    r"\b(429|500|502|503|504)\b|too many requests|rate limit|throttl|timed? ?out|timeout|connection (reset|refused|aborted)"
    r"|temporar(y|ily)|try again|service unavailable|state lock|workspace.*(busy|locked)|unexpected EOF",
    re.I,
)


# Our own codes for failures a later destroy may get past: the destroy action died,
# or the engine reported done while its state still held resources.
RETRY_CODES = frozenset({"DESTROY_INTERRUPTED", "DESTROY_INCOMPLETE"})


@dataclass
class ReapAction:
    run_id: str  # the run acted on
    before: str  # its state before
    after: str  # its state after
    why: str  # the rule that applied


def is_transient(error: dict | None) -> bool:
    """Whether a recorded error is one that the same call may get past later."""
    if not error:
        return True  # interrupted, nothing recorded: retrying is the only way on
    if error.get("retryable"):
        return True
    text = f"{error.get('code', '')} {error.get('message', '')} {error.get('log_tail', '')}"
    return error.get("code") in RETRY_CODES or bool(TRANSIENT.search(text))


def _age(iso: str | None, now: datetime) -> float:
    return (now - datetime.fromisoformat(iso)).total_seconds() if iso else 0.0


def _in_flight(run: RunRecord, kind: str) -> bool:
    act = run.last_activity(kind)
    return act is not None and not act.done


def _marker(ctx: Context, run: RunRecord) -> tuple[bool, dict] | None:
    for success in (True, False):
        key = layout.marker_key(ctx.config["workload"]["output_prefix"], run.run_id, success)
        try:
            return success, read_marker(ctx, run.job.get("output_bucket", ctx.config.output_bucket), key)
        except NoSuchKeyError:
            continue
    return None


def _end_then_destroy(ctx: Context, run: RunRecord, state: RunState, why: str) -> RunRecord:
    ctx.ledger.transition(run.run_id, state, why)
    return destroy_run(ctx, run.run_id, f"reaper: {why}")


def reap_run(ctx: Context, run: RunRecord, now: datetime | None = None) -> str | None:
    """One step for one run; returns the reason if it acted, else None."""
    now = now or datetime.now(timezone.utc)
    timeouts = ctx.config["timeouts"]
    past_deadline = bool(run.hard_deadline) and now > datetime.fromisoformat(run.hard_deadline)

    if run.state in (S.APPLYING, S.DESTROYING) and _in_flight(run, "apply" if run.state == S.APPLYING else "destroy"):
        advanced = advance_run(ctx, run)
        if advanced.state != run.state:
            return f"engine activity finished: {advanced.state}"
        run = advanced
        if run.state == S.APPLYING and (past_deadline or _age(run.entered_at(S.APPLYING), now) > timeouts["apply"]):
            return _fail_apply(ctx, run, f"apply not finished after {timeouts['apply']}s" if not past_deadline else "hard deadline passed during apply")
        return None

    if run.state in (S.REQUESTED, S.APPLYING):
        stalled = _age(run.entered_at(run.state), now) > timeouts["action"]
        if past_deadline or stalled:
            why = "hard deadline passed before apply finished" if past_deadline else f"{run.state} for over {timeouts['action']}s with no activity in flight (the action died)"
            return _fail_apply(ctx, run, why)
        return None

    if run.state == S.RUNNING:
        found = _marker(ctx, run)
        if found is not None:
            success, marker = found
            finish_run(ctx, run.run_id, success, marker)
            destroy_run(ctx, run.run_id, "reaper: completion marker found without its event")
            return "completion marker found without its event"
        if past_deadline:
            why = f"hard deadline {run.hard_deadline} passed"
            _end_then_destroy(ctx, run, S.TIMED_OUT, why)
            return why
        return None

    if run.state in (S.TIMED_OUT, S.APPLY_FAILED):
        destroy_run(ctx, run.run_id, f"reaper: {run.state} runs are destroyed")
        return f"{run.state} runs are destroyed"

    if run.state in (S.SUCCEEDED, S.FAILED):
        if _age(run.entered_at(run.state), now) > timeouts["soft"] or past_deadline:
            why = f"{run.state} for over {timeouts['soft']}s and not destroyed"
            destroy_run(ctx, run.run_id, f"reaper: {why}")
            return why
        return None

    if run.state == S.DESTROYING:  # nothing in flight: the destroy died
        if _age(run.entered_at(S.DESTROYING), now) > timeouts["action"]:
            def change(record: RunRecord) -> None:
                record.error = {"code": "DESTROY_INTERRUPTED", "message": "destroy did not finish (the action died)"}
                record.enter(S.DESTROY_FAILED, "reaper: destroy interrupted")

            ctx.ledger.update(run.run_id, change)
            return _retry_destroy(ctx, ctx.ledger.get(run.run_id), now, force=True)
        return None

    if run.state == S.DESTROY_FAILED:
        return _retry_destroy(ctx, run, now)
    return None


def _fail_apply(ctx: Context, run: RunRecord, why: str) -> str:
    def change(record: RunRecord) -> None:
        record.error = {"code": "APPLY_TIMEOUT", "message": why}
        record.enter(S.APPLY_FAILED, f"reaper: {why}")

    ctx.ledger.update(run.run_id, change)
    destroy_run(ctx, run.run_id, "reaper: destroying partial resources")
    return why


def _retry_destroy(ctx: Context, run: RunRecord, now: datetime, force: bool = False) -> str | None:
    attempts = run.attempts.get("destroy", 0)
    if not force and not is_transient(run.error):
        return None  # a named, non-transient failure: needs a person (see `ephemera runs show`)
    if attempts >= MAX_DESTROY_ATTEMPTS:
        return None
    wait = min(BACKOFF_BASE * 2 ** max(attempts - 1, 0), BACKOFF_MAX)
    if not force and _age(run.entered_at(S.DESTROY_FAILED), now) < wait:
        return None
    destroy_run(ctx, run.run_id, f"reaper: destroy retry {attempts + 1} after a transient failure")
    return f"destroy retry {attempts + 1}"


def _owner(engine, workspace: str) -> str | None:
    finder = getattr(engine, "state_owner", None)
    return finder(workspace) if finder else None


def reconcile(ctx: Context, now: datetime | None = None) -> list[ReapAction]:
    """Make the ledger name every resource the engine holds; destroy what no run owns."""
    now = now or datetime.now(timezone.utc)
    engine, done = ctx.engine, []
    runs = list(ctx.ledger.list())
    open_runs = [r for r in runs if r.state != S.DESTROYED]
    workspaces = {ctx.config["workspace"]["name"]} | {r.workspace for r in open_runs}
    if hasattr(engine, "workspaces"):
        workspaces |= set(engine.workspaces())
    by_id = {r.run_id: r for r in runs}
    for ws in sorted(workspaces):
        owner = _owner(engine, ws)
        owner_run = by_id.get(owner) if owner else None
        probe = owner_run or RunRecord(run_id=owner or f"{ws}-unknown", workspace=ws, engine=getattr(engine, "name", ""))
        resources = engine.resources(probe)
        if not resources:
            continue
        if owner_run is not None and owner_run.state != S.DESTROYED:
            missing = sorted(set(resources) - set(owner_run.resources))
            if missing:
                ctx.ledger.update(owner_run.run_id, lambda rec: setattr(rec, "resources", sorted(set(rec.resources) | set(missing))))
                why = f"engine state holds {len(missing)} resource(s) the record did not name: {', '.join(missing)}"
                log.warning("reconcile: run %s: %s", owner_run.run_id, why)
                done.append(ReapAction(owner_run.run_id, str(owner_run.state), str(owner_run.state), why))
            continue
        if any(r.workspace == ws for r in open_runs):
            continue  # an open run will apply or destroy this workspace: its rules decide
        done.append(_destroy_orphans(ctx, probe, resources, now, "owned by no open run"))
    # agents a DESTROYED run still has (started by an apply that outlived its record)
    for run in runs:
        if run.state == S.DESTROYED and run.hard_deadline and now < datetime.fromisoformat(run.hard_deadline):
            if hasattr(engine, "state_owner") and _owner(engine, run.workspace) != run.run_id:
                left = [r for r in engine.resources(run) if r.startswith("orphan_agent:")]
            elif hasattr(engine, "state_owner"):
                left = engine.resources(run)
            else:
                left = []
            if left:
                done.append(_destroy_orphans(ctx, run, left, now, f"run {run.run_id} is DESTROYED"))
    return done


def _destroy_orphans(ctx: Context, probe: RunRecord, resources: list[str], now: datetime, why: str) -> ReapAction:
    """Destroy a workspace's leftovers under its lock; confirm nothing is left."""
    lock = workspace_lock(ctx, probe.workspace)
    holder = f"reconcile-{probe.workspace}-{now.strftime('%Y%m%dt%H%M%S%f')}"
    got = lock.acquire(holder, now + timedelta(seconds=ctx.config["timeouts"]["action"]), _is_open(ctx))
    if not got.acquired:
        return ReapAction(probe.run_id, "orphan", "orphan", f"orphan resources left for now: workspace busy with {got.holder}")
    try:
        activity = ctx.engine.destroy(probe)
        left = ctx.engine.resources(probe)
    except EphemeraError as exc:
        activity, left = None, [exc.message]
    finally:
        lock.release(holder, got.token)
    ok = activity is not None and activity.state == "COMPLETED" and not left
    started = activity is not None and not activity.done  # an async engine: checked again next pass
    text = f"{len(resources)} orphan resource(s) in workspace '{probe.workspace}' ({why}): {', '.join(resources)}"
    after = "DESTROYED" if ok else ("DESTROYING" if started else "DESTROY_FAILED")
    log.warning("reconcile: %s -> %s", text, after if ok or started else f"still present: {left}")
    return ReapAction(probe.run_id, "orphan", after, text)


def reap(ctx: Context, now: datetime | None = None) -> list[ReapAction]:
    """One pass: reconcile the engine's state with the ledger, then every open run."""
    done = []
    try:
        done += reconcile(ctx, now)
    except EphemeraError as exc:
        log.warning("reaper: reconcile failed: %s", exc.message)
        done.append(ReapAction("-", "-", "-", f"error: reconcile: {exc.message}"))
    for run in ctx.ledger.open_runs():
        try:
            why = reap_run(ctx, run, now)
        except StateConflictError as exc:  # another action moved it meanwhile: fine
            log.info("reaper: run %s changed underneath: %s", run.run_id, exc.message)
            continue
        except EphemeraError as exc:
            log.warning("reaper: run %s: %s", run.run_id, exc.message)
            done.append(ReapAction(run.run_id, str(run.state), str(run.state), f"error: {exc.message}"))
            continue
        if why:
            after = ctx.ledger.get(run.run_id).state
            log.info("reaper: run %s %s -> %s: %s", run.run_id, run.state, after, why)
            done.append(ReapAction(run.run_id, str(run.state), str(after), why))
    return done


def reap_summary(actions: list[ReapAction]) -> list[dict]:
    return [asdict(a) for a in actions]
