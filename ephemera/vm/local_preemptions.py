"""The local stack's view of preempted VMs: the ``preempted.json`` file a simulated
preemption (:mod:`ephemera.vm.local_preempt`) leaves in ``<runs_dir>/<run_id>/vms/<worker>/`` (``{"at", "notice_at",
"grace"}``: when the VM was killed, when it got its notice, the seconds between).

It is the local stand-in for a cloud's record of a reclaimed instance; the local
stack's hooks report it to the reaper as a :class:`~ephemera.stack.hooks.PreemptionView`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ephemera.stack.hooks import PreemptionView
from ephemera.stack.spec import StackSpec
from ephemera.vm.local_preempt import local_preemptions


def _when(value: Any) -> datetime | None:
    """An ISO time (read as UTC without an offset), or None."""
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return when.replace(tzinfo=timezone.utc) if when is not None and when.tzinfo is None else when


class LocalPreemptionView(PreemptionView):
    """The local stack's :class:`PreemptionView`: the ``preempted.json`` files of the run,
    written since its current apply started (older ones belong to VMs already replaced)."""

    def preempted_workers(self, spec: StackSpec, config: Any, run_id: str, outputs: dict, since: str) -> dict[int, str]:
        runs_dir = Path(config.home) / "runs"  # the Terraform engine's runs_dir (engines.terraform.config)
        start = _when(since)
        out = {}
        for worker, record in local_preemptions(runs_dir, run_id).items():
            at = _when(record["at"])
            if start is not None and at is not None and at < start:
                continue
            out[worker] = f"local VM reclaimed at {record['at']} (grace {record.get('grace', '?')}s after its notice)"
        return out
