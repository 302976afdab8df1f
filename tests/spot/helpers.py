"""Helpers of the spot tests: preempted heartbeats as a VM writes them, the local
engine's record of a reclaimed VM, and an engine that records what it is asked."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from ephemera import layout
from ephemera.model.runs import Activity
from ephemera.timeutil import now_iso, now_utc


def write_beat(ctx, run_id: str, worker: int, age: float = 1.0, state: str = "running", **extra) -> dict:
    """Write worker's heartbeat as written ``age`` seconds ago; returns it."""
    at = (now_utc() - timedelta(seconds=age)).isoformat()
    body = {"run_id": run_id, "worker": worker, "state": state, "at": at, "phases": {"booted": at}, **extra}
    ctx.storage.put(ctx.config.state_bucket, layout.heartbeat_key(run_id, worker), json.dumps(body).encode())
    return body


def preempted_beat(ctx, run_id: str, worker: int = 0, source: str = "local", action: str = "terminate", age: float = 1.0):
    """The heartbeat a VM writes at its preemption notice (the spot contract's shape)."""
    notice_at = (now_utc() - timedelta(seconds=age)).isoformat()
    return write_beat(
        ctx,
        run_id,
        worker,
        age,
        state="preempted",
        preemption={"notice_at": notice_at, "source": source, "action": action},
    )


def write_preempted_json(home: Path, run_id: str, worker: int, grace: float = 2.0) -> Path:
    """The local engine's record of a reclaimed VM: ``<runs>/<run_id>/vms/<worker>/preempted.json``."""
    path = Path(home) / "runs" / run_id / "vms" / str(worker) / "preempted.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    at = now_utc()
    path.write_text(json.dumps({"at": at.isoformat(), "notice_at": (at - timedelta(seconds=grace)).isoformat(), "grace": grace}))
    return path


class RecordingEngine:
    """An engine whose applies and destroys complete at once, keeping the variables of each apply."""

    name = "terraform"

    def __init__(self):
        self.applies: list[dict] = []
        self.destroys = 0

    def apply(self, workspace: str, run_id: str, variables: dict, secure: dict) -> Activity:
        self.applies.append(dict(variables))
        return Activity(id=f"apply-{len(self.applies)}", kind="apply", state="COMPLETED", finished_at=now_iso())

    def destroy(self, workspace: str) -> Activity:
        self.destroys += 1
        return Activity(id=f"destroy-{self.destroys}", kind="destroy", state="COMPLETED", finished_at=now_iso())

    def status(self, activity: Activity) -> Activity:
        return activity

    def outputs(self, workspace: str) -> dict:
        return {}

    def resources(self, workspace: str) -> list[str]:
        return []


def preempt_local(home: Path, run_id: str, worker: int = 0, grace: float = 0.5) -> int:
    """Play a cloud reclaiming a local VM without a notice reaching it (``preempt_local_vm``
    gives one first): SIGKILL the VM's agent process group, then record the instance gone in
    ``preempted.json``. Returns the killed pid."""
    import os
    import signal
    import time

    from ephemera.vm.pids import read_pid

    pid = read_pid(str(Path(home) / "runs" / run_id / "agents" / f"worker-{worker}.pid"))
    assert pid, f"no agent pid for worker {worker} of {run_id}"
    time.sleep(grace)
    os.killpg(pid, signal.SIGKILL)
    write_preempted_json(home, run_id, worker, grace)
    return pid
