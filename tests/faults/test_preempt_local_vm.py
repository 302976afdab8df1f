"""A spot preemption, simulated on the local stack (issue 19).

A real local run's workload checkpoints in a loop; ``preempt_local_vm`` gives worker 0
its notice, waits the grace, kills the VM's process group and records it gone. The VM
said ``preempted`` in a heartbeat before it was killed, the workload's ``on_preempt``
callback ran, no failure marker was written (a preemption is an event, not a failure),
and the checkpoint is in storage. A second VM started by hand for the same run (what the
controller's recovery does by re-applying it) restores the checkpoint and finishes with
the same result as an unpreempted run."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime

import pytest

from ephemera import layout
from ephemera.actions import apply, destroy
from ephemera.context import Context
from ephemera.errors import NoSuchKeyError, ParamError
from ephemera.model.heartbeat import VMState, preemption_of
from ephemera.runkeys import run_key
from ephemera.vm import checkpoints
from ephemera.vm.heartbeats import read_heartbeats
from ephemera.vm.local_preempt import (
    PREEMPTED_FILE,
    agent_pid_file,
    local_preemptions,
    notice_file,
    preempt_local_vm,
    reset_local_vm,
    vm_dir,
)
from ephemera.vm.pids import is_agent_process, read_pid
from tests.helpers import marker_event, marker_written, wait_for

pytestmark = pytest.mark.slow  # a real local run whose VM is killed

STEPS = 30


def checkpoint(ctx, run_id: str, name: str):
    try:
        key = layout.checkpoint_key(run_id, name)
        return checkpoints.decode(ctx.storage.get(ctx.config.state_bucket, key), run_key(ctx.config, run_id), run_id, key)
    except NoSuchKeyError:
        return None


def test_a_preempted_local_vm_beats_preempted_tells_the_workload_and_a_new_vm_resumes(local_cfg, faults):
    config = local_cfg(
        workload={"entry": "ephemera.workloads.checkpoint_loop:main", "params": {"steps": STEPS, "step_seconds": 0.3}},
        timeouts={"hard": "10m", "soft": "5m", "action": "2m", "heartbeat": "2m"},
    )
    run_id = apply.main({"config": config})["run_id"]
    ctx = Context(config)
    runs_dir = ctx.config.home / "runs"
    wait_for(lambda: (checkpoint(ctx, run_id, "progress") or {}).get("step", 0) >= 3, what="three steps checkpointed")
    pid = read_pid(str(agent_pid_file(runs_dir, run_id, 0)))
    assert pid and is_agent_process(pid)

    preempt_local_vm(runs_dir, run_id, 0, grace=2.0)
    faults.inject()
    faults.scenario("spot preemption of a local VM")

    record = json.loads((vm_dir(runs_dir, run_id, 0) / PREEMPTED_FILE).read_text())
    assert record["grace"] == 2.0 and local_preemptions(runs_dir, run_id) == {0: record}
    wait_for(lambda: not is_agent_process(pid), what="the preempted VM gone")
    beat = next(b for b in read_heartbeats(ctx.storage, ctx.config.state_bucket, run_id) if b.worker == 0)
    assert beat.state is VMState.PREEMPTED
    notice = preemption_of(beat)
    assert notice and notice["source"] == "local" and notice["action"] == "terminate"
    assert beat.phases["preempted"] == notice["notice_at"]
    kill = datetime.fromisoformat(record["at"])
    assert datetime.fromisoformat(record["notice_at"]) <= datetime.fromisoformat(notice["notice_at"]) < kill
    assert datetime.fromisoformat(beat.at) < kill, "the preempted heartbeat was written before the kill"

    told = checkpoint(ctx, run_id, "notice")  # written by the workload's on_preempt callback
    assert told and told["source"] == "local" and told["notice_at"] == notice["notice_at"]
    saved = checkpoint(ctx, run_id, "progress")
    assert 3 <= saved["step"] < STEPS
    assert marker_written(ctx, run_id) is None, "a preemption writes no failure marker"

    # the recovery's replacement VM: same run, same boot document, a fresh process
    reset_local_vm(runs_dir, run_id, 0)
    assert local_preemptions(runs_dir, run_id) == {} and not notice_file(runs_dir, run_id, 0).exists()
    agents = runs_dir / run_id / "agents"
    started = subprocess.run(
        [sys.executable, "-m", "ephemera.vm.local_stack", "start", "--boot", str(vm_dir(runs_dir, run_id, 0) / "boot.json"),
         "--pid-file", str(agents / "worker-0.pid"), "--log-file", str(agents / "worker-0.log")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    assert wait_for(lambda: marker_written(ctx, run_id), timeout=180, what="the recovered run's marker") == "_SUCCESS.json"
    result = json.loads(ctx.storage.get(ctx.config.output_bucket, f"outputs/{run_id}/_SUCCESS.json"))["result"]
    assert result["resumed_from"] >= saved["step"] and result["steps"] == STEPS
    assert result["total"] == STEPS * (STEPS + 1) // 2, "the same result as an unpreempted run"
    assert destroy.main(marker_event(config, run_id))["ok"]
    assert ctx.ledger.get(run_id).state == "DESTROYED"


def test_preempting_a_vm_that_does_not_run_is_a_clear_error(tmp_path):
    with pytest.raises(ParamError) as err:
        preempt_local_vm(tmp_path, "r-none", 0, grace=0)
    assert err.value.field == "worker" and "no live local VM 0" in str(err.value)
    assert not notice_file(tmp_path, "r-none", 0).exists()
