"""The ``budget`` section: what runs may cost, per run and per calendar month.

``max_cost_per_run`` ends a run when its cost reaches it (its effective hard deadline is
computed at apply); ``monthly`` caps month-to-date spend overall and per workspace (an
apply that would exceed one is refused with ``BUDGET_EXCEEDED``); ``notify_at`` is the
share of a monthly cap at which a notification goes out. Amounts are in ``cost.currency``;
what a run costs comes from :mod:`ephemera.model.cost`, what it is allowed from
:mod:`ephemera.lifecycle.budget`.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

from pydantic import BeforeValidator, Field, WithJsonSchema

from ephemera.config.fields import WORKSPACE_NAME_FIX, is_workspace_name
from ephemera.sections import Invalid, Label, Section

OVERALL = "overall"  # the key of ``budget.monthly`` that caps every workspace's spend together


def _amount(value: Any, at: tuple[str, ...] = ()) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise Invalid(
            f"expected an amount > 0, got {value!r}",
            "an amount in cost.currency, e.g. 50 (leave the key out for no cap)",
            at=at,
        )
    return float(value)


def _optional_amount(value: Any) -> float | None:
    return None if value is None else _amount(value)


def _monthly(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise Invalid(
            f"expected a mapping of {OVERALL} or a workspace name -> amount, got {type(value).__name__}",
            "e.g. monthly: {overall: 500, gpu-train: 200}",
        )
    out = {}
    for name, amount in value.items():
        if name != OVERALL and not is_workspace_name(name):
            raise Invalid(f"{name!r} is neither '{OVERALL}' nor a workspace name", WORKSPACE_NAME_FIX, at=(str(name),))
        out[str(name)] = _amount(amount, (str(name),))
    return out


def _share(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise Invalid(f"expected a share between 0 and 1, got {value!r}", "e.g. notify_at: 0.8 (80 % of a monthly cap)")
    return float(value)


Amount = Annotated[Optional[float], Label("amount"), BeforeValidator(_optional_amount), WithJsonSchema({"type": "number"})]
Monthly = Annotated[
    dict,
    Label(f"mapping: {OVERALL} or workspace -> amount"),
    BeforeValidator(_monthly),
    WithJsonSchema({"type": "object", "additionalProperties": {"type": "number"}}),
]
Share = Annotated[float, Label("share (0-1)"), BeforeValidator(_share), WithJsonSchema({"type": "number"})]


class BudgetSection(Section):
    """What runs may cost: a cap per run, and monthly caps overall and per workspace."""

    max_cost_per_run: Amount = Field(
        None, description="a run is ended (BUDGET_EXCEEDED) when its cost reaches this amount (unset: no cap)"
    )
    monthly: Monthly = Field(
        default_factory=dict,
        description=f"calendar-month (UTC) caps: {OVERALL} and/or workspace name -> amount; "
        "an apply that would exceed one is refused (BUDGET_EXCEEDED)",
    )
    notify_at: Share = Field(0.8, description="share of a monthly cap whose crossing is notified, once per month and cap")

    @property
    def enabled(self) -> bool:
        return self.max_cost_per_run is not None or bool(self.monthly)
