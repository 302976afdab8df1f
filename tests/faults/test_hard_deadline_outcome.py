"""F18: a workload the agent kills at the run's hard deadline ends the run TIMED_OUT (it
did not fail by itself): the agent's marker says so, and the destroy records it."""

from __future__ import annotations

import pytest

from ephemera.actions import apply, destroy
from ephemera.context import Context
from ephemera.model import marker as markers
from tests.helpers import marker_event, marker_written, wait_for

pytestmark = pytest.mark.slow  # a real apply and an agent that kills its workload


def test_the_agent_kills_at_the_deadline_and_the_run_is_timed_out(local_cfg):
    config = local_cfg(workload={"params": {"sleep": 120}}, timeouts={"hard": "6s", "soft": "2m", "action": "2m"})
    run_id = apply.main({"config": config})["run_id"]
    ctx = Context(config)
    wait_for(lambda: marker_written(ctx, run_id), timeout=60, what="the agent's marker at the deadline")
    assert marker_written(ctx, run_id) == markers.FAILURE
    result = destroy.main(marker_event(config, run_id, markers.FAILURE))
    assert result["outcome"] == "TIMED_OUT" and result["run_error"]["code"] == "HARD_TIMEOUT", result
    assert [t.state for t in ctx.ledger.get(run_id).transitions][-3:] == ["TIMED_OUT", "DESTROYING", "DESTROYED"]
