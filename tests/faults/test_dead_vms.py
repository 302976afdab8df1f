"""Defect 5 of issue 11: dead VMs are noticed from outside, by their heartbeats.

Every VM of a run is SIGKILLed (agent and workload, no marker). Once no heartbeat has
come for ``timeouts.heartbeat``, the reaper fails the run (``VMS_SILENT``) and destroys
it, hours before its hard deadline; while the VMs beat, it leaves the run alone."""

from __future__ import annotations

import os
import signal
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ephemera.actions import apply, reap
from ephemera.context import Context
from ephemera.vm.heartbeats import read_heartbeats
from ephemera.vm.pids import is_agent_process
from tests.helpers import heartbeat_pids, live_agents, marker_written, wait_for

pytestmark = pytest.mark.slow  # kills the agents of a real run


def test_run_whose_vms_all_died_is_failed_and_destroyed_by_heartbeat(local_cfg, faults):
    config = local_cfg(
        workload={"params": {"sleep": 120}},
        workspace={"variables": {"worker_count": 2}},
        timeouts={"hard": "4h", "soft": "2m", "action": "2m", "heartbeat": "3s"},
    )
    run_id = apply.main({"config": config})["run_id"]
    ctx = Context(config)
    agents = wait_for(lambda: (lambda p: p if len(p) == 2 else None)(heartbeat_pids(ctx)), what="both VMs' heartbeats")
    assert reap.main({"config": config})["acted"] == 0  # the VMs beat: the run is left alone
    for pid in agents:
        os.killpg(pid, signal.SIGKILL)  # the VMs are gone
    faults.inject()
    faults.scenario("dead VMs by heartbeat")
    wait_for(lambda: not any(is_agent_process(p) for p in agents), what="agents gone")
    last = max(b.at for b in read_heartbeats(ctx.storage, ctx.config.state_bucket, run_id))
    wait_for(lambda: datetime.now(timezone.utc) > datetime.fromisoformat(last) + timedelta(seconds=3.5), what="the grace")
    result = reap.main({"config": config})
    assert result["acted"] == 1, result
    action = result["actions"][0]
    assert action["after"] == "DESTROYED" and "heartbeats stopped" in action["why"], action
    record = ctx.ledger.get(run_id)
    assert record.error.code == "VMS_SILENT"
    assert datetime.now(timezone.utc) < datetime.fromisoformat(record.hard_deadline) - timedelta(hours=3)
    assert [t.state for t in record.transitions][-3:] == ["FAILED", "DESTROYING", "DESTROYED"]
    assert marker_written(ctx, run_id) is None
    assert not live_agents(Path(config["home"]))
