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


def spot_local_stack(dest: Path) -> Path:
    """A copy of the local stack declaring the spot contract's variables: ``spot`` (bool,
    default false) and ``recovery`` (number, default 0) in every VM's replace trigger, so a
    recovery's re-apply replaces the VMs (the shipped stacks gain them with spot support)."""
    import shutil

    from ephemera.stack import STACKS_DIR

    folder = dest / "local-spot"
    shutil.copytree(STACKS_DIR / "local", folder)
    main = (folder / "main.tf").read_text()
    if 'variable "recovery"' not in main:
        main = main.replace(
            'resource "terraform_data" "vm" {\n  count = var.worker_count\n',
            'resource "terraform_data" "vm" {\n  count = var.worker_count\n\n'
            "  triggers_replace = [var.recovery] # a recovery's re-apply replaces the VM\n",
        )
        main += (
            '\nvariable "spot" {\n  type        = bool\n  default     = false\n  description = "Spot capacity (a local VM is a process either way)."\n}\n'
            '\nvariable "recovery" {\n  type        = number\n  default     = 0\n  description = "Times this run has been recovered."\n}\n'
        )
        (folder / "main.tf").write_text(main)
        spec = (folder / "stack.toml").read_text()
        spec = spec.replace(
            "[outputs.instance_ids]",
            '[variables.spot]\ntype = "bool"\ndefault = false\n\n[variables.recovery]\ntype = "number"\ndefault = 0\nset_by = "ephemera"\n\n[outputs.instance_ids]',
        )
        (folder / "stack.toml").write_text(spec)
    return folder


def preempt_local(home: Path, run_id: str, worker: int = 0, grace: float = 0.5) -> int:
    """Play a cloud reclaiming a local VM (the spot contract's ``preempt_local_vm`` without
    its notice): SIGKILL the VM's agent process group, then record the instance gone in
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
