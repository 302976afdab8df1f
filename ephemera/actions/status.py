"""Action ``status``: advance in-flight engine activities and report runs.

With ``run_id``: that run's record after polling its activity. Without: every open
run, each advanced one step (APPLYING -> RUNNING once an async apply completes,
DESTROYING -> DESTROYED once an async destroy completes), as far as the invocation's
time budget goes (the others are reported as recorded).
"""

from __future__ import annotations

from ephemera.actionkit import run_action
from ephemera.context import Context
from ephemera.lifecycle import advance_run
from ephemera.model.runids import validate_run_id

POLL_SECONDS = 15.0  # budget one engine poll and record write needs


def _summary(run) -> dict:
    return {
        "run_id": run.run_id,
        "workspace": run.workspace,
        "state": str(run.state),
        "outputs": run.outputs,
        "error": run.error.to_dict() if run.error else None,
    }


def handle(ctx: Context, params: dict) -> dict:
    if params.get("run_id") is not None:
        run = advance_run(ctx, ctx.ledger.get(validate_run_id(params["run_id"])))
        return {"run": {**_summary(run), "transitions": [vars(t) for t in run.transitions]}}
    runs = []
    for run in ctx.ledger.open_runs():
        # polling an engine takes a request per run: report the rest unpolled once time runs short
        runs.append(_summary(advance_run(ctx, run) if ctx.budget.allows(POLL_SECONDS) else run))
    return {"runs": runs}


def main(params: dict) -> dict:
    return run_action("status", params, handle)
