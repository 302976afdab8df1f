"""Action ``apply``: an alarm, object write or manual invoke creates a run and applies
its workspace.

Result: ``{"ok": true, "run_id", "state", ...}``; a redelivered event returns the
existing run with ``"duplicate": true``; a busy workspace returns ``"skipped": true``.
Both carry the ``reason`` and its ``reason_code`` (``DUPLICATE_EVENT``,
``WORKSPACE_BUSY``). Nothing is created for an event that fails to parse.
"""

from __future__ import annotations

from ephemera.actionkit import ReasonCode, run_action
from ephemera.context import Context
from ephemera.lifecycle import apply_run, destroy_run, request_run
from ephemera.model.runs import RunState
from ephemera.triggers.events import parse_event


def handle(ctx: Context, params: dict) -> dict:
    event = parse_event(params)
    outcome = request_run(ctx, event)
    if not outcome.created:
        if outcome.duplicate:
            state = str(outcome.run.state) if outcome.run else str(RunState.REQUESTED)
            return {"run_id": outcome.run_id, "state": state, "duplicate": True,
                    "reason_code": str(ReasonCode.DUPLICATE_EVENT), "reason": outcome.reason}
        return {"skipped": True, "reason_code": str(ReasonCode.WORKSPACE_BUSY), "reason": outcome.reason}
    run = apply_run(ctx, outcome.run)
    if run.state == RunState.APPLY_FAILED:
        # Partial resources may exist: destroy now (the reaper retries if this fails).
        run = destroy_run(ctx, run.run_id, "apply failed: destroying partial resources")
    result = {"run_id": run.run_id, "state": str(run.state), "workspace": run.workspace, "outputs": run.outputs}
    if run.error:
        result["run_error"] = run.error.summary()
    return result


def main(params: dict) -> dict:
    return run_action("apply", params, handle)
