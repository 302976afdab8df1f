"""Spot preemption, simulated on the local stack: this machine plays the cloud reclaiming a VM.

:func:`preempt_local_vm` gives a local VM its notice (the file its preemption watcher
polls, the stand-in for the metadata service: ``<runs>/<run_id>/vms/<worker>/``
:data:`NOTICE_FILE`), waits the grace period, then kills the VM's whole process group
with SIGKILL (agent, workload, VM services: a reclaimed host says nothing more) and
records the instance as gone in ``<runs>/<run_id>/vms/<worker>/`` :data:`PREEMPTED_FILE`
(``{"at", "notice_at", "grace"}``): the engine's view of a preempted local instance,
read by :func:`local_preemptions`.

A re-apply of the run (its recovery) replaces the VM: :func:`reset_local_vm`, called by
the local stack's hooks before each apply, removes both files, so the replacement VM
starts with no notice and is not reported gone.
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import timedelta
from pathlib import Path

from ephemera.errors import ParamError
from ephemera.files import write_private
from ephemera.timeutil import now_iso, now_utc
from ephemera.vm.pids import is_agent_process, read_pid

NOTICE_FILE = "preempt-notice.json"  # in a local VM's folder: the notice its watcher reads
PREEMPTED_FILE = "preempted.json"  # in a local VM's folder: the instance is gone (the engine's view)
NOTICE_ACTION = "terminate"  # what the local "metadata" says happens to the VM


def vm_dir(runs_dir: Path, run_id: str, worker: int) -> Path:
    """A local VM's folder (its boot document, environment, notice)."""
    return Path(runs_dir) / run_id / "vms" / str(int(worker))


def notice_file(runs_dir: Path, run_id: str, worker: int) -> Path:
    return vm_dir(runs_dir, run_id, worker) / NOTICE_FILE


def agent_pid_file(runs_dir: Path, run_id: str, worker: int) -> Path:
    """The pid file the local stack's VM writes (``terraform/local/main.tf``: ``<agent_dir>/worker-<n>.pid``)."""
    return Path(runs_dir) / run_id / "agents" / f"worker-{int(worker)}.pid"


def preempt_local_vm(runs_dir: Path, run_id: str, worker: int, grace: float = 2.0) -> None:
    """Give local VM ``worker`` of ``run_id`` the preemption notice, wait ``grace`` seconds, then
    kill its process group (SIGKILL) and record it gone. ParamError naming ``worker`` when
    no live VM of the run has that index."""
    pid = read_pid(str(agent_pid_file(runs_dir, run_id, worker)))
    if pid is None or not is_agent_process(pid):
        raise ParamError(
            "worker",
            f"run {run_id} has no live local VM {worker} (no running agent in {agent_pid_file(runs_dir, run_id, worker)})",
            "preempt a VM of a run that is applied and running on the local stack",
        )
    if grace < 0:
        raise ParamError("grace", f"is {grace}, a negative number of seconds", "give the seconds between notice and kill (>= 0)")
    notice_at = now_utc()
    notice = {
        "action": NOTICE_ACTION,
        "time": (notice_at + timedelta(seconds=grace)).isoformat(),
        "notice_at": notice_at.isoformat(),
    }
    path = notice_file(runs_dir, run_id, worker)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(notice))
    os.replace(tmp, path)  # the watcher reads a whole notice or none
    time.sleep(grace)
    try:
        os.killpg(pid, signal.SIGKILL)  # the VM's bootstrap started its own session: its group is the VM
    except ProcessLookupError:
        pass  # it ended by itself within the grace
    record = {"at": now_iso(), "notice_at": notice["notice_at"], "grace": grace}
    write_private(vm_dir(runs_dir, run_id, worker) / PREEMPTED_FILE, json.dumps(record).encode())


def local_preemptions(runs_dir: Path, run_id: str) -> dict[int, dict]:
    """worker -> its :data:`PREEMPTED_FILE` record, for each local VM of the run that was preempted (and not replaced since)."""
    found: dict[int, dict] = {}
    for path in sorted((Path(runs_dir) / run_id / "vms").glob(f"*/{PREEMPTED_FILE}")):
        if not path.parent.name.isdigit():
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and isinstance(record.get("at"), str):  # another shape is no record of a preemption
            found[int(path.parent.name)] = record
    return found


def reset_local_vm(runs_dir: Path, run_id: str, worker: int) -> None:
    """Before a VM of the run is (re)started: no notice waits for it and it is not gone."""
    folder = vm_dir(runs_dir, run_id, worker)
    (folder / NOTICE_FILE).unlink(missing_ok=True)
    (folder / PREEMPTED_FILE).unlink(missing_ok=True)
