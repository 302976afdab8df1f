"""Action ``apply``: an alarm, object write or manual invoke creates a run and applies
its workspace.

Result: ``{"ok": true, "run_id", "state", ...}`` (with budget caps, also the run's
effective ``hard_deadline`` and the ``budget`` line saying what set it); a redelivered
event returns the existing run with ``"duplicate": true``; a workspace held by another open run returns
``"skipped": true``; a workspace the engine reports busy leaves the run REQUESTED with
``"waiting": true`` (the reaper applies it once the workspace frees). Each of these
carries the ``reason`` and its ``reason_code`` (``DUPLICATE_EVENT``, ``WORKSPACE_BUSY``,
``WAITING_FOR_WORKSPACE``). A run whose apply failed is an error result naming the
run and the state it was left in (destroyed at once when the time budget allows, else
by the reaper). Nothing is created for an event that fails to parse, nor for a workload
whose entry or requirements are wrong (:mod:`ephemera.bundle.preflight`: every problem
at once, before a VM is paid for).
"""

from __future__ import annotations

from ephemera.actionkit import ReasonCode, run_action, run_failed
from ephemera.bundle.preflight import check_workload
from ephemera.context import Context
from ephemera.lifecycle import apply_run, destroy_run, request_run
from ephemera.lifecycle.budget import deadline_line
from ephemera.lifecycle.waiting import is_waiting
from ephemera.model.runs import RunState
from ephemera.events.formats import parse_event

DESTROY_NOW_SECONDS = 30.0  # budget a failed apply's immediate destroy needs; with less, the reaper does it


def handle(ctx: Context, params: dict) -> dict:
    event = parse_event(params)
    check_workload(ctx.config)  # before anything is created: a typo found here costs no VM boot
    outcome = request_run(ctx, event)
    if not outcome.created:
        if outcome.duplicate:
            state = str(outcome.run.state) if outcome.run else str(RunState.REQUESTED)
            return {
                "run_id": outcome.run_id,
                "state": state,
                "duplicate": True,
                "reason_code": str(ReasonCode.DUPLICATE_EVENT),
                "reason": outcome.reason,
            }
        return {"skipped": True, "reason_code": str(ReasonCode.WORKSPACE_BUSY), "reason": outcome.reason}
    run = apply_run(ctx, outcome.run)
    if is_waiting(run):
        return {
            "run_id": run.run_id,
            "state": str(run.state),
            "waiting": True,
            "reason_code": str(ReasonCode.WAITING_FOR_WORKSPACE),
            "reason": f"{run.error.message}; the reaper applies the run once the workspace frees",
        }
    if run.state == RunState.DESTROYED and run.error is not None:  # failed before anything was created
        return run_failed(run, run.error)
    if run.state == RunState.APPLY_FAILED:
        apply_error = run.error
        if ctx.budget.allows(DESTROY_NOW_SECONDS):  # partial resources may exist (the reaper retries if this fails)
            run = destroy_run(ctx, run.run_id, "apply failed: destroying partial resources")
        return run_failed(run, apply_error)
    capped = {"hard_deadline": run.budget["deadline"], "budget": deadline_line(run)} if run.budget else {}
    return {"run_id": run.run_id, "state": str(run.state), "workspace": run.workspace, "outputs": run.outputs, **capped}


def main(params: dict) -> dict:
    return run_action("apply", params, handle)
