"""Capacity and quota errors, named by the providers' documented codes, found in an engine's output.

A failed apply may fail because the cloud has no room for what was asked (no GPU
capacity in the zone, a vCPU or instance quota reached, a spot price too low) rather
than because the workspace is wrong. Those failures are worth another rung of the
capacity ladder (:mod:`ephemera.lifecycle.ladder`); others are not. They are told
apart by the *code* the provider's API returned, which Terraform's diagnostics carry
in a structured form, never by reading its prose:

- the AWS provider (AWS SDK for Go v2): ``... api error <Code>: <message>``; the
  older SDK v1 form ``<Code>: <message>`` followed by ``status code: <n>``;
- the IBM provider and Schematics' job logs: the VPC API's error JSON
  (``"code": "<code>"``) or its rendering ``Code: <code>``, and an instance's status
  reason (``cannot_start_capacity``).

Only codes in :data:`CODES` count; a code found but not listed is not a capacity error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class CapacityError:
    """A capacity or quota failure an engine's output names by its provider's code."""

    code: str  # the provider's code, e.g. InsufficientInstanceCapacity, cannot_start_capacity
    provider: str  # "aws" | "ibm"
    kind: str  # "capacity" (none free now), "quota" (an account limit), "price" (spot price above the max)
    meaning: str  # the provider's documented meaning, shortened
    capacity: bool = True  # always True: the lifecycle's test for "another rung may get past it"


# The EC2 API's error codes (Amazon EC2 API Reference, "Error codes for the Amazon EC2
# API") and the IBM Cloud VPC codes (VPC API error messages; instance status messages)
# that say "no room for this request here", not "this request is wrong".
CODES: dict[str, CapacityError] = {
    c.code: c
    for c in (
        CapacityError("InsufficientInstanceCapacity", "aws", "capacity", "not enough capacity to fulfil the request"),
        CapacityError("InsufficientCapacity", "aws", "capacity", "not enough capacity to fulfil the request"),
        CapacityError("InsufficientHostCapacity", "aws", "capacity", "not enough capacity on dedicated hosts"),
        CapacityError("InsufficientReservedInstanceCapacity", "aws", "capacity", "not enough reserved capacity for the request"),
        CapacityError("InstanceLimitExceeded", "aws", "quota", "the limit on running instances is reached"),
        CapacityError("VcpuLimitExceeded", "aws", "quota", "the vCPU limit of running on-demand instances is reached"),
        CapacityError("MaxSpotInstanceCountExceeded", "aws", "quota", "the limit on spot instances is reached"),
        CapacityError("SpotMaxPriceTooLow", "aws", "price", "the spot maximum price is below the spot price"),
        CapacityError(
            "Unsupported", "aws", "capacity", "unsupported here, e.g. a zone that currently constrains the instance type"
        ),
        CapacityError("cannot_start_capacity", "ibm", "capacity", "resource capacity is unavailable to start the instance"),
        CapacityError("cannot_start_placement_group", "ibm", "capacity", "not enough capacity in the placement group to start"),
        CapacityError("over_quota", "ibm", "quota", "the request would exceed the quota for a resource type"),
        CapacityError("reservation_capacity_unavailable", "ibm", "capacity", "the reservation's capacity is unavailable"),
    )
}

# Where a code stands in each structured form: the token is captured, the prose around it never read.
_CODE_FORMS = (
    re.compile(r"\bapi error (\w+):"),  # AWS SDK for Go v2 (terraform-provider-aws v4+)
    re.compile(r"^\s*(?:Error: .*?: )?(\w+): .*\n\s*status code: \d{3}", re.MULTILINE),  # AWS SDK for Go v1
    re.compile(r"""["']code["']\s*:\s*["'](\w+)["']""", re.IGNORECASE),  # IBM VPC API error JSON
    re.compile(r"\bCode:\s*[\"']?(\w+)", re.IGNORECASE),  # IBM: the provider's and Schematics' rendering
)


def codes_in(output: str) -> list[str]:
    """Every provider error code the output carries in a structured form, in order of appearance."""
    found: list[tuple[int, str]] = []
    for form in _CODE_FORMS:
        found.extend((m.start(1), m.group(1)) for m in form.finditer(output))
    return [code for _, code in sorted(found)]


def capacity_error(output: str) -> CapacityError | None:
    """The first capacity or quota code in an engine's output, or None when it names none."""
    for code in codes_in(output):
        if code in CODES:
            return CODES[code]
    return None
