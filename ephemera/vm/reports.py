"""What a run's VMs reported about their boot, read by the controller from their heartbeats.

Each VM's heartbeat carries its boot phases (``booted``, ``bundle_installed``,
``driver_ready``, ``agent_ready``, ``first_task``, ``last_task``: name -> ISO time),
its GPU report and the interpreter its agent runs. :func:`vm_reports` gathers them
for the run record; :func:`vm_seconds` says where the paid VM time went: from each
VM's ``booted`` to the end of the run (or now), the part between its first and last
task, and the rest -- booting, installing, proving the GPU, idling -- outside the
workload.
"""

from __future__ import annotations

from datetime import datetime

from ephemera.storage.base import Storage
from ephemera.timeutil import now_utc
from ephemera.vm.heartbeats import read_heartbeats

PHASES = ("booted", "bundle_installed", "driver_ready", "agent_ready", "first_task", "last_task")


def vm_reports(storage: Storage, bucket: str, run_id: str) -> list[dict]:
    """Per VM, in worker order: worker, state, phases, GPU report, python."""
    out = []
    for beat in read_heartbeats(storage, bucket, run_id):
        if not isinstance(beat.get("worker"), int):
            continue
        out.append({"worker": beat["worker"], "state": beat.get("state"), "phases": dict(beat.get("phases") or {}),
                    "gpu": beat.get("gpu"), "python": beat.get("python")})
    return sorted(out, key=lambda r: r["worker"])


def _at(iso: str | None) -> datetime | None:
    return datetime.fromisoformat(iso) if iso else None


def vm_seconds(vms: list[dict], end: datetime | None = None) -> dict:
    """{"total", "workload", "outside"} VM-seconds of the reported VMs up to ``end`` (default now)."""
    end = end or now_utc()
    total = workload = 0.0
    for vm in vms:
        phases = vm.get("phases") or {}
        booted = _at(phases.get("booted"))
        if booted is None:
            continue
        total += max(0.0, (end - booted).total_seconds())
        first, last = _at(phases.get("first_task")), _at(phases.get("last_task"))
        if first is not None:
            workload += max(0.0, ((last or end) - first).total_seconds())
    return {"total": round(total, 1), "workload": round(workload, 1), "outside": round(total - workload, 1)}


def missing_vms(vms: list[dict], worker_count: int) -> list[int]:
    """Workers whose agent never reported ready."""
    ready = {vm["worker"] for vm in vms if "agent_ready" in (vm.get("phases") or {})}
    return [w for w in range(worker_count) if w not in ready]


def merge_reports(known: list[dict], new: list[dict]) -> list[dict]:
    """``new`` reports over ``known`` ones, each VM's phases united (a phase keeps its first time)."""
    by_worker = {vm["worker"]: dict(vm, phases=dict(vm.get("phases") or {})) for vm in known}
    for vm in new:
        old = by_worker.get(vm["worker"], {})
        phases = {**(vm.get("phases") or {}), **(old.get("phases") or {})}
        by_worker[vm["worker"]] = {**old, **{k: v for k, v in vm.items() if v is not None}, "phases": phases}
    return [by_worker[w] for w in sorted(by_worker)]


def with_marker_times(vms: list[dict], marker: dict | None) -> list[dict]:
    """Worker 0 runs the workload: its marker's start and end are its first and last task."""
    marker = marker or {}
    phases = {k: marker[v] for k, v in (("first_task", "started_at"), ("last_task", "finished_at")) if marker.get(v)}
    if not phases or (marker.get("boot") or {}).get("worker") not in (None, 0):
        return vms
    return merge_reports(vms, [{"worker": 0, "phases": phases}])
