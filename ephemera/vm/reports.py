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

from ephemera.model.heartbeat import REPORTED_PHASES, Heartbeat, VMPhase
from ephemera.model.marker import Marker
from ephemera.storage.base import Storage
from ephemera.timeutil import now_utc
from ephemera.vm.heartbeats import read_heartbeats

PHASES = tuple(p.value for p in REPORTED_PHASES)  # as the run record's ``vms[].phases`` keys them


def vm_report(beat: Heartbeat) -> dict:
    """What the run record keeps of one VM's heartbeat: worker, state, phases, GPU report, python."""
    return {
        "worker": beat.worker,
        "state": beat.state.value if beat.state else None,
        "phases": dict(beat.phases),
        "gpu": beat.gpu,
        "python": beat.python,
    }


def vm_reports(storage: Storage, bucket: str, run_id: str) -> list[dict]:
    """Per VM, in worker order, its :func:`vm_report`."""
    return [vm_report(beat) for beat in read_heartbeats(storage, bucket, run_id)]


def _at(iso: str | None) -> datetime | None:
    return datetime.fromisoformat(iso) if iso else None


def vm_seconds(vms: list[dict], end: datetime | None = None) -> dict:
    """{"total", "workload", "outside"} VM-seconds of the reported VMs up to ``end`` (default now)."""
    end = end or now_utc()
    total = workload = 0.0
    for vm in vms:
        phases = vm.get("phases") or {}
        booted = _at(phases.get(VMPhase.BOOTED.value))
        if booted is None:
            continue
        total += max(0.0, (end - booted).total_seconds())
        first, last = _at(phases.get(VMPhase.FIRST_TASK.value)), _at(phases.get(VMPhase.LAST_TASK.value))
        if first is not None:
            workload += max(0.0, ((last or end) - first).total_seconds())
    return {"total": round(total, 1), "workload": round(workload, 1), "outside": round(total - workload, 1)}


def merge_reports(known: list[dict], new: list[dict]) -> list[dict]:
    """``new`` reports over ``known`` ones, each VM's phases united (a phase keeps its first time)."""
    by_worker = {vm["worker"]: dict(vm, phases=dict(vm.get("phases") or {})) for vm in known}
    for vm in new:
        old = by_worker.get(vm["worker"], {})
        phases = {**(vm.get("phases") or {}), **(old.get("phases") or {})}
        by_worker[vm["worker"]] = {**old, **{k: v for k, v in vm.items() if v is not None}, "phases": phases}
    return [by_worker[w] for w in sorted(by_worker)]


def with_marker_times(vms: list[dict], marker: Marker | None) -> list[dict]:
    """Worker 0 runs the workload: its marker's start and end are its first and last task."""
    if marker is None:
        return vms
    phases = {k.value: v for k, v in ((VMPhase.FIRST_TASK, marker.started_at), (VMPhase.LAST_TASK, marker.finished_at)) if v}
    if not phases or (marker.boot or {}).get("worker") not in (None, 0):
        return vms
    return merge_reports(vms, [{"worker": 0, "phases": phases}])
