"""Defect 2 of issue 11: a storage fault as the workload ends.

The storage's temp folder (every write goes through it) is briefly unusable while the
workload writes its output and its completion marker. The writes are retried (the
backend names the fault transient) until the fault passes: the run ends SUCCEEDED
with its result, not TIMED_OUT hours later with the result lost."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ephemera.actions import apply, destroy
from ephemera.context import Context
from tests.helpers import live_agents, marker_event, marker_written, wait_for

pytestmark = pytest.mark.slow  # a real run


def agent_logs(home: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in home.glob("runs/*/agents/*.log"))


def test_marker_write_fault_is_retried_and_the_result_kept(local_cfg, home, faults):
    config = local_cfg(workload={"params": {"sleep": 4, "message": "kept"}})
    run_id = apply.main({"config": config})["run_id"]
    ctx = Context(config)
    # the workload has started (it sleeps, then writes its output and its marker)
    wait_for(lambda: "starting workload" in agent_logs(home), what="the workload's start")
    tmp = Path(config["localhost"]["root"]) / ".tmp"
    shutil.rmtree(tmp)
    tmp.write_text("the temp folder is briefly not a folder")  # every write now fails (ENOTDIR)
    faults.inject()
    faults.scenario("storage fault at the marker")
    try:
        wait_for(
            lambda: "writing output" in agent_logs(home) and "retrying" in agent_logs(home),
            timeout=60,
            what="a retried final write",
        )
    finally:
        tmp.unlink()
        tmp.mkdir()
    assert wait_for(lambda: marker_written(ctx, run_id), what="marker") == "_SUCCESS.json"
    result = destroy.main(marker_event(config, run_id))
    assert result["state"] == "DESTROYED" and result["workload"] == "succeeded", result
    record = ctx.ledger.get(run_id)
    assert "SUCCEEDED" in [t.state for t in record.transitions]
    assert record.result["result"]["written"] == f"outputs/{run_id}/hello.txt"
    assert ctx.storage.get(ctx.config.output_bucket, f"outputs/{run_id}/hello.txt") == b"kept"
    assert not live_agents(home)
