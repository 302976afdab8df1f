"""Faults on the VM side: the workload raises, the workload process dies, the whole
VM (agent) is SIGKILLed. Heartbeats let `ephemera runs` show a silent VM; the
reaper ends a run that never writes a marker at its hard timeout."""

from __future__ import annotations

import json
import os
import signal
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ephemera.actions import apply, destroy, reap
from ephemera.cli.runs import runs_table
from ephemera.context import Context
from ephemera.lifecycle.reaper import reap as reap_pass
from ephemera.vm.pids import is_agent_process
from tests.helpers import heartbeat_pids, live_agents, marker_event, marker_written, wait_for

pytestmark = pytest.mark.slow  # kills agent processes of real runs

# what every failure marker holds, whoever writes it (ephemera.model.marker)
FAILURE_KEYS = {"run_id", "entry", "status", "started_at", "finished_at", "duration_s", "outputs", "error", "log_tail"}


def test_workload_exception_writes_failure_marker_with_log_tail(local_cfg, faults):
    config = local_cfg(workload={"params": {"fail": True}})
    run_id = apply.main({"config": config})["run_id"]
    ctx = Context(config)
    faults.inject()
    assert wait_for(lambda: marker_written(ctx, run_id), what="marker") == "_FAILURE.json"
    marker = json.loads(ctx.storage.get(ctx.config.output_bucket, f"outputs/{run_id}/_FAILURE.json"))
    assert marker["error"]["type"] == "RuntimeError" and "failing on purpose" in marker["error"]["message"]
    assert "workload failed" in marker["log_tail"]
    assert set(marker) == FAILURE_KEYS and set(marker["error"]) == {"type", "message", "traceback"}
    result = destroy.main(marker_event(config, run_id, "_FAILURE.json"))
    assert result["state"] == "DESTROYED" and result["workload"] == "failed"
    error = ctx.ledger.get(run_id).error
    assert error.code == "WORKLOAD_FAILED" and "failing on purpose" in error.message and "workload failed" in error.log_tail


def _workload_child(agent_pid: int) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == agent_pid and b"run-job" in cmd:
                return int(entry.name)
    return 0


def test_workload_process_killed_agent_writes_failure_marker(local_cfg, faults):
    config = local_cfg(workload={"params": {"sleep": 120}})
    result = apply.main({"config": config})
    ctx = Context(config)
    agent = wait_for(lambda: list(heartbeat_pids(ctx)), what="heartbeat")[0]
    child = wait_for(lambda: _workload_child(agent), what="workload process")
    os.kill(child, signal.SIGKILL)
    faults.inject()
    assert wait_for(lambda: marker_written(ctx, result["run_id"]), what="marker") == "_FAILURE.json"
    marker = json.loads(ctx.storage.get(ctx.config.output_bucket, f"outputs/{result['run_id']}/_FAILURE.json"))
    assert "without writing a marker" in marker["error"]["message"]
    # the agent's own failure marker has the workload runner's shape
    assert set(marker) == FAILURE_KEYS and set(marker["error"]) == {"type", "message", "traceback"}
    assert marker["error"]["type"] == "AgentError" and marker["entry"] == "ephemera.workloads.smoke:main" and marker["started_at"]
    assert destroy.main(marker_event(config, result["run_id"], "_FAILURE.json"))["state"] == "DESTROYED"
    assert not is_agent_process(agent)


def test_vm_killed_no_marker_silent_then_reaped_at_hard_timeout(local_cfg, faults):
    config = local_cfg(workload={"params": {"sleep": 120}}, timeouts={"hard": "4s", "soft": "2m", "action": "2m"})
    run_id = apply.main({"config": config})["run_id"]
    ctx = Context(config)
    agent = wait_for(lambda: list(heartbeat_pids(ctx)), what="heartbeat")[0]
    assert "ok " in runs_table(ctx)
    os.killpg(agent, signal.SIGKILL)  # the VM is gone: agent and workload, no marker
    faults.inject()
    wait_for(lambda: not is_agent_process(agent), what="agent gone")

    def silent_table() -> str | None:
        # heartbeats are 5 s apart by default; at a 0.1 s interval the dead agent soon counts as silent
        table = runs_table(ctx, heartbeat_interval=0.1)
        return table if "SILENT" in table else None

    table = wait_for(silent_table, what="SILENT in the runs table")
    assert run_id in table
    deadline = datetime.fromisoformat(ctx.ledger.get(run_id).hard_deadline)
    # a second before the hard deadline the reaper waits (asked at that instant: on a busy
    # machine the wall clock may already be past a 4 s deadline by now)
    assert reap_pass(ctx, now=deadline - timedelta(seconds=1)) == []
    wait_for(lambda: datetime.now(timezone.utc) > deadline, what="hard deadline")
    result = reap.main({"config": config})
    assert result["acted"] == 1 and result["actions"][0]["after"] == "DESTROYED"
    assert "hard deadline" in result["actions"][0]["why"]
    assert marker_written(ctx, run_id) is None
    assert [t.state for t in ctx.ledger.get(run_id).transitions][-3:] == ["TIMED_OUT", "DESTROYING", "DESTROYED"]
    assert not live_agents(Path(config["home"]))
