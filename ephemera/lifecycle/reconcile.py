"""Reconciling the engine's state with the ledger (the first step of each reaper pass).

Resources an open run's record does not name (a crash between the engine creating
them and the ledger recording it) are written into that record, so the reaper's
rules destroy them; resources in a workspace whose owning run is DESTROYED or
unknown, with no open run on the workspace, are destroyed at once under the
workspace lock; agents an apply started but never saved to its state are stopped.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from ephemera.context import Context
from ephemera.errors import EphemeraError
from ephemera.lifecycle.request import run_is_open, workspace_lock
from ephemera.lifecycle.reaper import ReapAction
from ephemera.model.runs import RunRecord, RunState

log = logging.getLogger("ephemera.reconcile")
S = RunState


def _owner(engine, workspace: str) -> str | None:
    finder = getattr(engine, "state_owner", None)
    return finder(workspace) if finder else None


def reconcile(ctx: Context, runs: list[RunRecord] | None = None, now: datetime | None = None) -> list[ReapAction]:
    """Make the ledger name every resource the engine holds; destroy what no run owns.

    ``runs`` is the ledger as the caller already listed it (listed here if None)."""
    now = now or datetime.now(timezone.utc)
    engine, done = ctx.engine, []
    runs = list(ctx.ledger.list()) if runs is None else runs
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
    got = lock.acquire(holder, now + timedelta(seconds=ctx.config["timeouts"]["action"]), run_is_open(ctx))
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
