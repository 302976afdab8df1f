"""Defect 8 of issue 11: an agent's helpers (its multiprocessing forkserver, resource
tracker, worker pool) die with it. One agent pid is SIGKILLed; once its run is
destroyed no process of its session is left, even though the agent itself was already
gone when the destroy came."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from ephemera.actions import apply, destroy
from ephemera.context import Context
from tests.helpers import heartbeat_pids, wait_for

pytestmark = pytest.mark.slow  # kills the agent of a real run


def session_members(sid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:  # field 6 of stat: the session id
            found.append(int(entry.name))
    return found


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return b""


def test_agent_helpers_do_not_outlive_a_killed_agent(local_cfg, faults):
    config = local_cfg(workload={"params": {"sleep": 120}})
    run_id = apply.main({"config": config})["run_id"]
    ctx = Context(config)
    agent = wait_for(lambda: list(heartbeat_pids(ctx)), what="heartbeat")[0]

    def helpers_up():
        members = [p for p in session_members(agent) if p != agent]
        return members if any(b"run-job" in cmdline(p) for p in members) and len(members) >= 2 else None

    helpers = wait_for(helpers_up, what="the agent's workload process and helpers")
    os.kill(agent, signal.SIGKILL)  # the agent alone: its helpers are orphaned
    faults.inject()
    faults.scenario("agent killed, helpers orphaned")
    wait_for(lambda: agent not in session_members(agent), what="agent gone")
    # bound to the agent: its workload process takes the agent's group down with it, before any destroy
    wait_for(lambda: not session_members(agent), timeout=10, what=f"helpers {helpers} gone with the agent")
    result = destroy.main({"config": config, "run_id": run_id})
    assert result["state"] == "DESTROYED", result
    assert session_members(agent) == [], f"helpers {helpers} outlived the destroy"
