"""The ``spot`` section: what the reaper does when a run's spot VM is preempted.

A run asks for spot capacity with ``workspace.variables.spot: true``. When the cloud
reclaims one of its VMs, the reaper re-applies the same run (a replacement VM, the same
run id, job, bundle and hard deadline) up to ``max_recoveries`` times; after that,
``fallback`` says whether the run is re-applied once more on on-demand capacity or ends
FAILED with the error code ``PREEMPTED`` (:mod:`ephemera.lifecycle.preemption`).
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from ephemera.sections import Invalid, Section


class SpotFallback(str, Enum):
    """What a run whose recoveries are spent does next."""

    NONE = "none"  # end FAILED (PREEMPTED) and destroy
    ON_DEMAND = "on_demand"  # re-apply once more with spot = false

    def __str__(self) -> str:
        return self.value


def _recoveries(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Invalid(
            f"expected a whole number >= 0, got {value!r}",
            "how many times a preempted run is re-applied on spot capacity, e.g. max_recoveries: 2 (0: never)",
        )
    return value


def _fallback(value: Any) -> Any:
    if value not in SpotFallback._value2member_map_:
        raise Invalid(
            f"expected 'none' or 'on_demand', got {value!r}",
            "fallback: on_demand re-applies a run whose recoveries are spent on on-demand capacity; none fails it",
        )
    return SpotFallback(value)


class SpotSection(Section):
    """Spot VMs: how a run recovers when the cloud reclaims one of its VMs."""

    max_recoveries: Annotated[int, BeforeValidator(_recoveries)] = Field(
        2, description="how many times a preempted run is re-applied (same run id) before its fallback"
    )
    fallback: Annotated[SpotFallback, BeforeValidator(_fallback)] = Field(
        SpotFallback.NONE,
        description="when recoveries are spent: 'none' (the run ends FAILED, PREEMPTED) or 'on_demand' (re-applied once with spot = false)",
    )
