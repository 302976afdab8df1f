"""A real agent on an AWS spot VM, its metadata service a fake IMDSv2 on 127.0.0.1
(:mod:`tests.fakes.imds_server`, which follows AWS's documented contract:
``spot/instance-action`` answers 404 until EC2 marks the instance for interruption, then
``{"action": ..., "time": ...}``; IMDSv2 tokens from ``PUT /latest/api/token``).

Until the notice, the agent's polls change nothing. On the notice it writes a
``preempted`` heartbeat with the ``preemption`` field, the workload's ``on_preempt``
callback runs (it saves a checkpoint), and as the VM goes down -- its workload killed
first (a shutdown signals every process, in no order the agent controls), then the agent
itself gets SIGTERM -- no failure marker is written and the heartbeat's last word stays
``preempted``."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from ephemera import layout
from ephemera.errors import NoSuchKeyError
from ephemera.model import marker as markers
from ephemera.model.heartbeat import VMState, preemption_of
from ephemera.storage.localhost.backend import LocalhostStorage
from ephemera.vm import checkpoints
from ephemera.vm.localrun import LocalRun
from tests.fakes.imds_server import start_imds_server
from tests.helpers import wait_for

pytestmark = pytest.mark.slow  # agent processes


def workload_pid(run: LocalRun) -> int | None:
    """The workload process (``python -m ephemera.vm run-job``) of the run's agent."""
    mark = str(run.agent_dir / "agent.json").encode()
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"run-job" in cmdline and mark in cmdline:
            return int(proc.name)
    return None


def test_an_aws_spot_notice_makes_the_agent_beat_preempted_and_tell_the_workload(tmp_path):
    imds = start_imds_server()
    run = LocalRun(
        tmp_path,
        workers=1,
        entry="ephemera.workloads.checkpoint_loop:main",
        params={"steps": 200, "step_seconds": 0.2},
        heartbeat_interval=0.5,
        preemption={"source": "aws", "endpoint": imds.url},
    )
    storage = LocalhostStorage(tmp_path / "storage")

    def saved(name: str):
        try:
            key = layout.checkpoint_key(run.run_id, name)
            return checkpoints.decode(storage.get(run.bucket, key), run.run_key, run.run_id, key)
        except NoSuchKeyError:
            return None

    try:
        run.start()
        wait_for(lambda: (saved("progress") or {}).get("step", 0) >= 2, what="two steps checkpointed")
        wait_for(lambda: any(r[0] == "GET" for r in imds.requests), what="the agent polling the metadata service")
        assert run.heartbeats()[0].state is VMState.RUNNING, "404s are not a notice"
        imds.notice = {"action": "stop", "time": "2026-12-07T08:02:00Z"}
        beat = wait_for(
            lambda: (lambda b: b if b.state is VMState.PREEMPTED else None)(run.heartbeats()[0]), what="preempted beat"
        )
        notice = preemption_of(beat)
        assert notice is not None and notice["source"] == "aws" and notice["action"] == "stop"
        assert beat.phases["preempted"] == notice["notice_at"]
        told = wait_for(lambda: saved("notice"), what="the workload's on_preempt callback")
        assert told["action"] == "stop" and told["notice_at"] == notice["notice_at"]
        pid = workload_pid(run)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # the shutdown reaches the workload first
        wait_for(lambda: workload_pid(run) is None, what="the workload gone")
        time.sleep(1.0)  # time for a (wrong) failure marker to be written
        assert not markers.exists(storage, run.bucket, layout.output_prefix("outputs", run.run_id))
    finally:
        run.close()  # the instance stops: the agent gets SIGTERM and its workload dies
        imds.stop()
    last = run.heartbeats()[0]
    assert last.state is VMState.PREEMPTED and preemption_of(last) == notice, "its last word stays preempted"
    assert not markers.exists(storage, run.bucket, layout.output_prefix("outputs", run.run_id))
