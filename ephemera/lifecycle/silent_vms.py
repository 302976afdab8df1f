"""The reaper's dead-VM rule: a RUNNING run whose VMs stopped heartbeating is FAILED
(``VMS_SILENT``) and destroyed, long before its hard deadline.

Every agent rewrites its heartbeat every few seconds (:mod:`ephemera.vm.heartbeats`).
The run is given up when the VM that runs the workload (worker 0) or every VM that
ever reported has been silent for longer than ``timeouts.heartbeat``, or reported
itself stopped: no completion marker can come any more. VMs that never reported, and
a VM rebooting once to load its GPU driver (silent for minutes, by plan), are the
boot-timeout rule's (:mod:`ephemera.lifecycle.boot_timeout`).
"""

from __future__ import annotations

from datetime import datetime

from ephemera.context import Context
from ephemera.errors import EphemeraError
from ephemera.model.heartbeat import Heartbeat, VMState
from ephemera.lifecycle.preemption import current_beats
from ephemera.model.runs import RunRecord, RunState
from ephemera.timeutil import since
from ephemera.vm.heartbeats import read_heartbeats

WORKLOAD_WORKER = 0  # the VM whose agent runs the workload and writes the marker


def _silence(beat: Heartbeat, now: datetime) -> float | None:
    """Seconds the VM of ``beat`` has been silent (infinite once it said it stopped);
    None for a VM rebooting for its driver (the boot-timeout rule's: a planned driver
    reboot is silent for minutes), or a heartbeat whose time cannot be read."""
    if beat.state == VMState.STOPPED:
        return float("inf")
    if beat.state == VMState.REBOOTING:
        return None
    try:
        return since(beat.at, now)
    except (TypeError, ValueError):
        return None


def vms_silent(ctx: Context, run: RunRecord, now: datetime) -> str | None:
    """Why the run's VMs count as dead, or None."""
    if run.state != RunState.RUNNING:
        return None
    grace = ctx.config.timeouts.heartbeat
    try:
        beats = current_beats(run, read_heartbeats(ctx.storage, ctx.config.state_bucket, run.run_id))
    except EphemeraError:
        return None  # cannot tell: the hard deadline still holds
    silent = {}
    for beat in beats:
        quiet = _silence(beat, now)
        if quiet is not None and quiet > grace:
            silent[beat.worker] = quiet
    reported = {b.worker for b in beats}
    if not silent or (WORKLOAD_WORKER not in silent and set(silent) != reported):
        return None
    shown = ", ".join(f"worker {w}: {'stopped' if s == float('inf') else f'silent {int(s)}s'}" for w, s in sorted(silent.items()))
    return f"VM heartbeats stopped for over {grace}s ({shown}); no completion marker can come"
