"""How ``ephemera runs show``, the timeline and the dashboard tell a run's preemptions:
each VM the cloud reclaimed, what the reaper did, and the VM time paid for the lost VM."""

from __future__ import annotations

from ephemera.cli.tables import human_duration, table
from ephemera.model.runs import Preemption, RunRecord

OUTCOMES = {
    "recovered": "re-applied on spot",
    "on_demand": "re-applied on on-demand (spot = false)",
    "failed": "not recovered: FAILED (PREEMPTED)",
}


def lost_at(p: Preemption) -> str:
    """When the VM was lost: its notice, else when the reaper saw it."""
    return p.notice_at or p.detected_at


def outcome_text(p: Preemption) -> str:
    text = OUTCOMES.get(p.outcome, p.outcome or "-")
    return f"{text} (recovery {p.recovery})" if p.recovery and p.outcome != "failed" else text


def timeline_events(run: RunRecord) -> list[tuple[str, str, str]]:
    """(at, what, why) per preemption, for the text timeline."""
    return [
        (
            lost_at(p),
            f"  vm{p.worker} preempted",
            f"{p.source}: {p.why}; paid {human_duration(p.paid_seconds)}; {outcome_text(p)}",
        )
        for p in run.preemptions
    ]


def rows(run: RunRecord) -> list[dict]:
    """One plain dict per preemption (the dashboard's table)."""
    return [
        {
            "worker": p.worker,
            "notice": (p.notice_at or "-")[:23].replace("T", " "),
            "detected": p.detected_at[:23].replace("T", " "),
            "source": p.source,
            "why": p.why,
            "paid": human_duration(p.paid_seconds),
            "outcome": outcome_text(p),
        }
        for p in run.preemptions
    ]


def summary(run: RunRecord) -> str:
    """One line: how many preemptions and recoveries, and the VM time they cost."""
    if not run.preemptions:
        return ""
    paid = sum(p.paid_seconds for p in run.preemptions)
    fallback = ", the last on on-demand capacity" if run.on_demand else ""
    return (
        f"spot: {len(run.preemptions)} VM(s) preempted, {run.recovery} recovery(ies){fallback}; "
        f"{human_duration(paid)} of VM time paid for the lost VMs"
    )


def lines(run: RunRecord) -> list[str]:
    """The ``runs show`` section: the summary and the table (nothing for a run never preempted)."""
    if not run.preemptions:
        return []
    keys = ["worker", "notice", "detected", "source", "why", "paid", "outcome"]
    body = table([k.upper() for k in keys], [[r[k] for k in keys] for r in rows(run)])
    return ["\n" + summary(run), "preemptions:\n" + body]
