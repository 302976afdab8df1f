"""A Schematics workspace locked by another job: the run waits (REQUESTED, with the
engine's reason) instead of failing, and the reaper applies it once the workspace
frees, within the run's window (``timeouts.apply`` after it was requested).

Schematics answers an apply on a locked workspace with HTTP 409 ("Workspace is locked
by an ongoing job"); the engine reports that as ``WorkspaceBusyError`` (retryable).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from ephemera.actionkit import time_limit
from ephemera.context import Context
from ephemera.lifecycle.reaper import reap
from ephemera.model.runs import RunState as S
from ephemera.timeutil import Budget

actions_apply = pytest.importorskip("ephemera.actions.apply")
actions_status = pytest.importorskip("ephemera.actions.status")


@pytest.fixture
def cfg(cos_config) -> dict:
    """COS (a local S3 server) with the VMs' trusted profile: the storage the stack's VMs reach."""
    return {**cos_config, "timeouts": {"action": "2m", "apply": "30m"}}


def _ctx(cfg, seconds: float = 30.0) -> Context:
    ctx = Context(cfg)
    ctx.budget = Budget(seconds)  # as a reap action's invocation: a short busy retry per pass
    return ctx


def _apply_while_locked(cfg, schematics) -> dict:
    schematics.lock()
    with time_limit(8):  # the platform's limit: the apply retries the busy workspace for 3 s of it
        result = actions_apply.main(
            {"config": cfg, "ephemera_kind": "alarm", "ephemera_trigger": "nightly", "ephemera_time": "2026-12-03T02:00:00Z"}
        )
    return result


def test_busy_workspace_leaves_the_run_waiting_and_the_reaper_applies_it_later(cfg, schematics):
    result = _apply_while_locked(cfg, schematics)
    assert result["ok"] and result["waiting"] and result["state"] == "REQUESTED", result
    assert result["reason_code"] == "WAITING_FOR_WORKSPACE" and "locked" in result["reason"]
    run_id = result["run_id"]
    ctx = _ctx(cfg)
    run = ctx.ledger.get(run_id)
    assert [t.state for t in run.transitions] == ["REQUESTED", "APPLYING", "REQUESTED"]
    assert run.error.code == "WORKSPACE_BUSY" and run.error.retryable and "locked" in run.transitions[-1].reason
    assert schematics.calls("PUT", "/apply") == []

    # still locked, and older than timeouts.action: waiting, not taken for a dead action
    later = datetime.fromisoformat(run.created_at) + timedelta(minutes=5)
    assert reap(ctx, now=later) == []
    assert ctx.ledger.get(run_id).state == S.REQUESTED

    schematics.lock(False)  # the other job ended
    acted = reap(_ctx(cfg), now=later + timedelta(minutes=5))
    assert [(a.run_id, a.before, a.after) for a in acted] == [(run_id, "REQUESTED", "APPLYING")], acted
    assert "workspace free" in acted[0].why
    states = [actions_status.main({"config": cfg, "run_id": run_id})["run"]["state"] for _ in range(2)]
    assert states == ["APPLYING", "RUNNING"]
    assert len(schematics.calls("PUT", "/apply")) == 1


def test_a_run_still_waiting_when_its_window_closes_fails_without_applying(cfg, schematics):
    run_id = _apply_while_locked(cfg, schematics)["run_id"]
    ctx = _ctx(cfg)
    closed = datetime.fromisoformat(ctx.ledger.get(run_id).created_at) + timedelta(minutes=31)
    acted = reap(ctx, now=closed)
    assert acted[0].after == "APPLY_FAILED" and "window closed" in acted[0].why, acted
    run = ctx.ledger.get(run_id)
    assert run.error.code == "WORKSPACE_BUSY_TIMEOUT" and schematics.calls("PUT", "/apply") == []
