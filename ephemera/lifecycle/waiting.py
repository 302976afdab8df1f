"""Runs waiting for a busy workspace: the reaper applies them once it frees.

When the engine refuses an apply because the workspace is locked by another activity
(:class:`~ephemera.errors.WorkspaceBusyError`, e.g. a Schematics job still running),
:func:`~ephemera.lifecycle.activities.apply_run` puts the run back to REQUESTED with
that error (retryable) as its reason: the run is *waiting*, not failed. Each reaper
pass tries the apply again, briefly; the run's window to start is ``timeouts.apply``
after it was requested (never past its hard deadline). A run still waiting when its
window closes is recorded APPLY_FAILED (``WORKSPACE_BUSY_TIMEOUT``), and the reaper's
usual rules tear it down.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ephemera.context import Context
from ephemera.errors import WorkspaceBusyError
from ephemera.lifecycle.activities import apply_run, record_failure
from ephemera.model.runs import RunError, RunRecord, RunState

S = RunState
REAPER_BUSY_WAIT = 3.0  # seconds one reaper pass retries a still-busy workspace, per run


def is_waiting(run: RunRecord) -> bool:
    """A REQUESTED run whose last apply found the workspace busy."""
    return run.state == S.REQUESTED and run.error is not None and run.error.code == WorkspaceBusyError.code


def window_end(ctx: Context, run: RunRecord) -> datetime:
    """The last time a waiting run may still be applied."""
    end = datetime.fromisoformat(run.created_at) + timedelta(seconds=ctx.config.timeouts.apply)
    if run.hard_deadline:
        end = min(end, datetime.fromisoformat(run.hard_deadline))
    return end


def retry_waiting(ctx: Context, run: RunRecord, now: datetime) -> str | None:
    """Apply a waiting run if its workspace is free now; fail it once its window closed.

    Returns the reason when the run changed state (None while it keeps waiting)."""
    end = window_end(ctx, run)
    if now > end:
        why = (
            f"the workspace stayed busy until the run's window closed at {end.isoformat()} "
            f"(last: {run.error.message if run.error else 'busy'})"
        )
        record_failure(
            ctx,
            run.run_id,
            RunError("WORKSPACE_BUSY_TIMEOUT", why),
            S.APPLY_FAILED,
            f"reaper: {why}",
            from_states=frozenset({S.REQUESTED}),
        )
        return why
    after = apply_run(ctx, run, busy_wait=REAPER_BUSY_WAIT)
    if is_waiting(after):
        return None
    return f"workspace free: apply {'started' if after.state != S.APPLY_FAILED else 'failed'} ({after.state})"
