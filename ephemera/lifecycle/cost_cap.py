"""A run whose cost reached ``budget.max_cost_per_run`` is ended at its effective hard
deadline (computed at apply, :func:`ephemera.lifecycle.budget.admit`): recorded
TIMED_OUT with ``BUDGET_EXCEEDED`` and the reason, then destroyed. The reaper calls
:func:`end_over_cap` on running runs."""

from __future__ import annotations

from datetime import datetime

from ephemera.context import Context
from ephemera.lifecycle.activities import destroy_run, record_failure
from ephemera.lifecycle.budget import Admission
from ephemera.model.cost import money
from ephemera.model.runs import RunError, RunRecord, RunState


def over_cap(run: RunRecord, now: datetime) -> str | None:
    """Why the run is past the deadline its cost cap set, or None."""
    admission = Admission.from_dict(run.budget) if run.budget else None
    if admission is None or not admission.capped or now <= datetime.fromisoformat(admission.deadline):
        return None
    return (
        f"cost cap reached: {money(admission.cap, admission.currency)} at {admission.hourly:g} {admission.currency}/h "
        f"({admission.vms} x {admission.profile}) by {admission.deadline}"
    )


def end_over_cap(ctx: Context, run: RunRecord, now: datetime) -> str | None:
    """End and destroy a run past its cost cap; the reason, or None if it is not."""
    why = over_cap(run, now)
    if why is None:
        return None
    error = RunError("BUDGET_EXCEEDED", f"{why}; raise budget.max_cost_per_run to let runs like it go on longer")
    record_failure(ctx, run.run_id, error, RunState.TIMED_OUT, f"reaper: {why}")
    destroy_run(ctx, run.run_id, "reaper: cost cap reached")
    return why
