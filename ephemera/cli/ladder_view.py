"""The capacity ladder's attempts as ``ephemera runs show`` prints them: the timeline's
rows for each failed rung, and a table of every rung tried (see :mod:`ephemera.lifecycle.ladder`)."""

from __future__ import annotations

from ephemera.cli.tables import table
from ephemera.model.runs import RunRecord, RunState

S = RunState


def _describe(variables: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in variables.items()) or "workspace.variables"


def ladder_events(run: RunRecord) -> list[tuple[str, str, str]]:
    """(time, what, why) of each failed rung, for the timeline."""
    return [(a["failed_at"], f"  rung {a['rung']} failed", f"{a['code']} ({a['kind']}); {a['next']}") for a in run.ladder]


def ladder_lines(run: RunRecord) -> list[str]:
    """The "capacity ladder" block: one row per rung tried, the last one's outcome from the run's state."""
    if not run.ladder:
        return []
    rows = [
        [
            str(a["rung"]),
            _describe(a["variables"]),
            a["activity"],
            a["started_at"][11:19],
            a["failed_at"][11:19],
            f"{a['code']} ({a['kind']})",
        ]
        for a in run.ladder
    ]
    last = run.ladder[-1]
    if last.get("next_variables"):  # a rung after the last failed one was applied
        apply = next((x for x in reversed(run.activities) if x.kind == "apply" and x.id != last["activity"]), None)
        outcome = {S.APPLYING: "applying", S.REQUESTED: "clearing the failed rung"}.get(run.state, "")
        if not outcome:
            outcome = f"failed: {run.error.code}" if run.state == S.APPLY_FAILED and run.error else "applied"
        rows.append(
            [
                str(last["rung"] + 1),
                _describe(last["next_variables"]),
                apply.id if apply else "-",
                apply.started_at[11:19] if apply else "",
                (apply.finished_at or "")[11:19] if apply else "",
                outcome,
            ]
        )
    return [
        "\ncapacity ladder (workspace.fallback):\n" + table(["RUNG", "VARIABLES", "APPLY", "STARTED", "ENDED", "OUTCOME"], rows)
    ]
