"""The reaper's boot-timeout rule: a RUNNING run whose VMs have not all reported their agent
ready within ``timeouts.boot`` of the apply's end is FAILED (``BOOT_TIMEOUT``) and destroyed.

A bootstrap that fails writes the failure marker itself; this rule catches the VMs that
never report at all (a hung boot, a VM that never started its agent), so a GPU VM
does not idle until the hard deadline.
"""

from __future__ import annotations

from datetime import datetime

from ephemera.context import Context
from ephemera.errors import EphemeraError
from ephemera.model.heartbeat import Heartbeat, VMPhase
from ephemera.lifecycle.preemption import current_beats
from ephemera.model.runs import RunRecord, RunState
from ephemera.timeutil import since
from ephemera.vm.heartbeats import read_heartbeats


def missing_vms(beats: list[Heartbeat], worker_count: int) -> list[int]:
    """Workers whose agent never reported ready."""
    ready = {b.worker for b in beats if VMPhase.AGENT_READY.value in b.phases}
    return [w for w in range(worker_count) if w not in ready]


def boot_overdue(ctx: Context, run: RunRecord, now: datetime) -> str | None:
    """Why the run's boot is overdue, or None."""
    started = run.entered_at(RunState.RUNNING)
    limit = ctx.config.timeouts.boot
    if run.state != RunState.RUNNING or not started or since(started, now) <= limit:
        return None
    try:
        beats = current_beats(run, read_heartbeats(ctx.storage, ctx.config.state_bucket, run.run_id))
    except EphemeraError:
        return None  # cannot tell: the hard deadline still holds
    count = int(run.job.worker_count if run.job is not None else 1)
    missing = missing_vms(beats, count)
    if not missing:
        return None
    seen = {b.worker: max(b.phases, key=b.phases.__getitem__) for b in beats if b.phases}  # its latest phase
    last = ", ".join(f"worker {w}: {seen.get(w, 'nothing reported')}" for w in missing)
    return f"VM(s) {missing} did not report their agent ready within {limit}s of the apply ({last})"
