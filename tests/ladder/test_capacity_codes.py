"""The capacity-codes table and how a code is found in an engine's output.

The codes are the providers' documented ones:

- Amazon EC2 API Reference, "Error codes for the Amazon EC2 API": ``InsufficientInstanceCapacity``
  "There is not enough capacity to fulfill your request"; ``InsufficientCapacity`` (the same,
  for an import); ``InstanceLimitExceeded`` "You've reached the limit on the number of
  instances you can run concurrently"; ``VcpuLimitExceeded`` "You've reached the limit on the
  number of vCPUs (virtual processing units) assigned to the running instances in your
  account"; ``MaxSpotInstanceCountExceeded`` "You've reached the limit on the number of Spot
  Instances that you can launch"; ``SpotMaxPriceTooLow`` "The request can't be fulfilled
  because the Spot maximum price (max price) is below the Spot price"; ``Unsupported`` "The
  specified request is unsupported. For example, you might be trying to launch an instance
  in an Availability Zone that currently has constraints on that instance type".
- IBM Cloud VPC, "Virtual server instance deployment error messages": ``cannot_start_capacity``
  "Can't start instance because resource capacity is unavailable" (resolutions include
  "Select a different availability zone" and "Provision a smaller instance profile");
  ``cannot_start_placement_group``; VPC API error messages: ``over_quota`` "The request would
  exceed the quota for a resource type"; reservations: ``reservation_capacity_unavailable``.
"""

from __future__ import annotations

import pytest

from ephemera.engines.capacity import CODES, capacity_error, codes_in
from tests.ladder import errors


@pytest.mark.parametrize(
    ("text", "code", "kind"),
    [
        (errors.AWS_NO_CAPACITY, "InsufficientInstanceCapacity", "capacity"),
        (errors.AWS_VCPU_QUOTA, "VcpuLimitExceeded", "quota"),
        (errors.IBM_NO_CAPACITY, "cannot_start_capacity", "capacity"),
        (errors.IBM_OVER_QUOTA, "over_quota", "quota"),
        ('Code: "over_quota", Message: The request would exceed the quota', "over_quota", "quota"),
        (
            "Error: creating EC2 Instance: SpotMaxPriceTooLow: Your Spot request price of 0.1 is lower than the minimum\n"
            "\tstatus code: 400, request id: 1f2e",
            "SpotMaxPriceTooLow",
            "price",
        ),
    ],
)
def test_a_documented_code_in_the_engine_output_is_a_capacity_error(text, code, kind):
    found = capacity_error(text)
    assert found is not None and found.code == code and found.kind == kind and found.capacity


@pytest.mark.parametrize("text", [errors.IBM_BAD_IMAGE, errors.PROSE_ONLY, "", "Error: Unsupported argument"])
def test_other_failures_and_prose_are_not(text):
    """A code outside the table (``not_found``) and a code name in prose are not matched;
    neither is Terraform's own "Unsupported argument" diagnostic (no ``api error`` before it)."""
    assert capacity_error(text) is None


def test_codes_are_read_in_order_and_the_table_is_per_provider():
    assert codes_in(errors.IBM_BAD_IMAGE + errors.IBM_OVER_QUOTA) == ["not_found", "over_quota"]
    assert {c.provider for c in CODES.values()} == {"aws", "ibm"}
    assert all(c.kind in ("capacity", "quota", "price") for c in CODES.values())
