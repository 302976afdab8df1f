"""What one reaper pass did to one run (or to a workspace's orphans): the rule and the
states before and after. The reaper and the reconciler both return these."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class ReapAction:
    run_id: str  # the run acted on
    before: str  # its state before ("orphan" for resources no open run owned)
    after: str  # its state after
    why: str  # the rule that applied


def reap_summary(actions: list[ReapAction]) -> list[dict]:
    """The actions as JSON-able dicts (the ``reap`` action's result)."""
    return [asdict(a) for a in actions]
