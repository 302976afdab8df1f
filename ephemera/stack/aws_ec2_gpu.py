"""The ``aws-ec2-gpu`` stack's hooks: the engine's view of its spot instances.

EC2 records why an instance left the running state (``StateReason``). Its codes
``Server.SpotInstanceTermination`` ("the instance was terminated because the number of
Spot requests with a maximum price equal to or higher than the Spot price exceeded
available capacity or because of an increase in the Spot price") and
``Server.SpotInstanceShutdown`` (the same, for a spot instance stopped instead) are
the cloud's word that it reclaimed the VM; any other reason (a user's terminate, the
VM's own power-off at its hard deadline) is not a preemption. Instances are found by
the tag every resource of a run carries, ``ephemera:run``, and their worker by
``ephemera:worker``.

An image build's builder VM has powered off when ``DescribeInstances`` reports its
``State.Name`` as "stopped" (:class:`~ephemera.stack.hooks.PowerStateView`).
"""

from __future__ import annotations

from typing import Any

from ephemera.stack.hooks import PowerStateView, PreemptionView, StackHooks
from ephemera.stack.spec import StackSpec

RUN_TAG = "ephemera:run"  # the stack's default_tags: the run id, on every resource
WORKER_TAG = "ephemera:worker"  # on each instance: its worker index
SPOT_REASONS = frozenset({"Server.SpotInstanceTermination", "Server.SpotInstanceShutdown"})
GONE_STATES = ["shutting-down", "terminated", "stopping", "stopped"]


def _region(spec: StackSpec, config: Any) -> str:
    """The region the stack builds in: ``workspace.variables.region``, else the stack's default."""
    region = (config.workspace.variables or {}).get("region")
    if not region:
        var = spec.variables.get("region")
        region = var.default if var is not None else None
    return str(region or "us-east-1")


class AwsEc2Gpu(PreemptionView, PowerStateView, StackHooks):
    """Hooks of the ``aws-ec2-gpu`` stack. ``client`` (tests) replaces the boto3 EC2 client."""

    def __init__(self, client: Any = None):
        self.client = client

    def _ec2(self, spec: StackSpec, config: Any) -> Any:
        if self.client is not None:
            return self.client
        import boto3  # lazy: a cloud SDK, needed only when the reaper asks about AWS instances

        return boto3.client("ec2", region_name=_region(spec, config))  # endpoint and keys: boto3's own config

    def instance_power_state(self, config: Any, instance_id: str, region: str, endpoint: str | None = None) -> str:
        client = self.client
        if client is None:
            import boto3  # lazy: a cloud SDK, needed only while an image build waits

            client = boto3.client("ec2", region_name=region, endpoint_url=endpoint)  # None: boto3's own config
        found = client.describe_instances(InstanceIds=[instance_id])
        return str(found["Reservations"][0]["Instances"][0]["State"]["Name"])

    def preempted_workers(self, spec: StackSpec, config: Any, run_id: str, outputs: dict, since: str) -> dict[int, str]:
        current = {vm.id for vm in self.vm_addresses(spec, outputs) if vm.id}  # the apply's instances, not replaced ones
        pages = (
            self._ec2(spec, config)
            .get_paginator("describe_instances")
            .paginate(
                Filters=[
                    {"Name": f"tag:{RUN_TAG}", "Values": [run_id]},
                    {"Name": "instance-state-name", "Values": GONE_STATES},
                ]
            )
        )
        found: dict[int, str] = {}
        for page in pages:
            for reservation in page.get("Reservations", []):
                for inst in reservation.get("Instances", []):
                    reason = (inst.get("StateReason") or {}).get("Code", "")
                    if reason not in SPOT_REASONS or (current and inst.get("InstanceId") not in current):
                        continue
                    tags = {t.get("Key"): t.get("Value") for t in inst.get("Tags", [])}
                    worker = str(tags.get(WORKER_TAG, ""))
                    if worker.isdigit():
                        state = (inst.get("State") or {}).get("Name", "")
                        found[int(worker)] = f"instance {inst.get('InstanceId')} {state}: {reason}"
        return found
