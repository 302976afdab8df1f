"""Reconciling the engine's state with the ledger (the first step of each reaper pass).

It needs an engine that is an :class:`~ephemera.engines.base.OrphanSweeper` (one that
says which workspaces it holds and which run each was last applied for); with any
other engine there is nothing to compare, and it says so in the log. For every
workspace the engine holds resources in:

- last applied for a run that is open: resources its record does not name (a crash
  between the engine creating them and the ledger recording them) are written into
  the record, so the reaper's rules destroy them with the run;
- another open run is on the workspace: nothing (that run's rules decide);
- otherwise (its run is DESTROYED or unknown to the ledger) the leftovers get a sweep
  record of their own, ``<workspace>-sweep-<time>``: it takes the workspace lock,
  starts DESTROYING and is destroyed like any run -- polled while an async engine
  works, DESTROYED once nothing is left, retried by the reaper's rules when the
  failure is retryable -- so the sweep is in the ledger like everything else.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from ephemera.context import Context
from ephemera.engines.base import OrphanSweeper
from ephemera.lifecycle.activities import start_destroy
from ephemera.lifecycle.reap_action import ReapAction
from ephemera.lifecycle.request import run_is_open, workspace_lock
from ephemera.model.runs import RunRecord, RunState, Transition
from ephemera.timeutil import now_iso, now_utc

log = logging.getLogger("ephemera.reconcile")
S = RunState
ORPHAN = "orphan"  # the "before" state of resources no open run owned


def reconcile(ctx: Context, runs: list[RunRecord] | None = None, now: datetime | None = None) -> list[ReapAction]:
    """Make the ledger name every resource the engine holds; destroy what no open run owns.

    ``runs`` is the ledger as the caller already listed it (listed here if None)."""
    now = now or now_utc()
    engine = ctx.engine
    if not isinstance(engine, OrphanSweeper):
        log.info("reconcile: the %s engine cannot list its workspaces and their owners; no orphan sweep", engine.name)
        return []
    runs = list(ctx.ledger.list()) if runs is None else runs
    by_id = {r.run_id: r for r in runs}
    taken = {r.workspace for r in runs if r.state != S.DESTROYED}
    done = []
    for workspace in engine.workspaces():
        resources = ctx.engine.resources(workspace)  # (``engine`` is narrowed to the sweeper protocol)
        if not resources:
            continue
        owner = engine.owner(workspace)
        owner_run = by_id.get(owner) if owner else None
        if owner_run is not None and owner_run.state != S.DESTROYED:
            action = _record_missing(ctx, owner_run, resources)
            if action is not None:
                done.append(action)
        elif workspace not in taken:
            done.append(_sweep(ctx, workspace, owner, owner_run, resources, now))
    return done


def _record_missing(ctx: Context, run: RunRecord, resources: list[str]) -> ReapAction | None:
    missing = sorted(set(resources) - set(run.resources))
    if not missing:
        return None
    ctx.ledger.update(run.run_id, lambda record: setattr(record, "resources", sorted(set(record.resources) | set(missing))))
    why = f"engine state holds {len(missing)} resource(s) the record did not name: {', '.join(missing)}"
    log.warning("reconcile: run %s: %s", run.run_id, why)
    return ReapAction(run.run_id, str(run.state), str(run.state), why)


def _sweep(
    ctx: Context, workspace: str, owner: str | None, owner_run: RunRecord | None, resources: list[str], now: datetime
) -> ReapAction:
    """Give a workspace's leftovers a sweep record under the workspace lock, and destroy them."""
    whose = (
        f"run {owner} is DESTROYED"
        if owner_run is not None
        else f"run {owner} is not in the ledger"
        if owner
        else "no run is named as its owner"
    )
    text = (
        f"{len(resources)} orphan resource(s) in workspace '{workspace}' (owned by no open run: {whose}): {', '.join(resources)}"
    )
    sweep_id = f"{workspace}-sweep-{now.strftime('%Y%m%dt%H%M%S')}"
    timeouts = ctx.config.timeouts
    deadline = now + timedelta(seconds=timeouts.hard)
    lock = workspace_lock(ctx, workspace)
    got = lock.acquire(sweep_id, deadline + timedelta(seconds=timeouts.soft), run_is_open(ctx))
    if not got.acquired:
        return ReapAction(sweep_id, ORPHAN, ORPHAN, f"{text}; left for now: the workspace is busy with {got.holder}")
    record = RunRecord(
        run_id=sweep_id,
        workspace=workspace,
        engine=ctx.engine.name,
        state=S.DESTROYING,
        hard_deadline=deadline.isoformat(),
        resources=sorted(resources),
        transitions=[Transition(str(S.DESTROYING), now_iso(), f"reconcile: {text}")],
    )
    if not ctx.ledger.create(record):
        lock.release(sweep_id, got.token)
        return ReapAction(sweep_id, ORPHAN, ORPHAN, f"{text}; left for now: sweep record {sweep_id} exists already")
    after = start_destroy(ctx, record)
    log.warning("reconcile: %s -> sweep %s %s", text, sweep_id, after.state)
    return ReapAction(sweep_id, ORPHAN, str(after.state), text)
