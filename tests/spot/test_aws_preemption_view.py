"""The aws-ec2-gpu stack's view of preempted instances, against moto's EC2.

EC2's ``StateReason`` codes (API reference, StateReason): ``Server.SpotInstanceTermination``:
"The instance was terminated because the number of Spot requests with a maximum price
equal to or higher than the Spot price exceeded available capacity or because of an
increase in the Spot price"; ``Server.SpotInstanceShutdown``: the same, for an instance
stopped; ``Client.UserInitiatedShutdown``: "The instance was shut down using the Amazon
EC2 API". Moto terminates through the API only (user-initiated), so the spot reclaim is
played by setting its instance's reason as EC2 would."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ephemera.stack import stack_spec
from ephemera.stack.aws_ec2_gpu import AwsEc2Gpu

moto = pytest.importorskip("moto")
RUN = "r-20261207-spot"
CONFIG = SimpleNamespace(workspace=SimpleNamespace(variables={"region": "us-east-1"}))


@pytest.fixture
def ec2(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    import boto3

    with moto.mock_aws():
        client = boto3.client("ec2", region_name="us-east-1")
        # an image of the account's own: moto's thousands of built-in Amazon images cost a minute to list
        client.register_image(Name="ephemera-test-image", RootDeviceName="/dev/sda1", VirtualizationType="hvm")
        yield client


def _launch(ec2, run_id: str, workers: int) -> list[str]:
    [image] = [i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]]
    ids = []
    for worker in range(workers):
        tags = [{"Key": "ephemera:run", "Value": run_id}, {"Key": "ephemera:worker", "Value": str(worker)}]
        out = ec2.run_instances(
            ImageId=image,
            MinCount=1,
            MaxCount=1,
            InstanceType="g6.xlarge",
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )
        ids.append(out["Instances"][0]["InstanceId"])
    return ids


def _reclaim(instance_id: str, code: str = "Server.SpotInstanceTermination") -> None:
    """What EC2 does to a reclaimed spot instance: terminated, with the spot reason."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.instances import StateReason

    backend = ec2_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    backend.terminate_instances([instance_id])
    backend.get_instance(instance_id).state_reason = StateReason(f"{code}: {code}", code)


def test_a_spot_reclaimed_instance_is_reported_a_user_terminated_one_is_not(ec2):
    spec = stack_spec("aws-ec2-gpu")
    ids = _launch(ec2, RUN, 3)
    other = _launch(ec2, "r-another-run", 1)
    outputs = {"instance_ids": {"value": ids}, "private_ips": {"value": ["10.0.0.1", "10.0.0.2", "10.0.0.3"]}}
    view = AwsEc2Gpu(client=ec2)
    assert view.preempted_workers(spec, CONFIG, RUN, outputs, "") == {}  # all running
    ec2.terminate_instances(InstanceIds=[ids[2]])  # a person's terminate: the silent rule's, not a recovery
    _reclaim(ids[1])
    _reclaim(other[0])  # another run's instance: not this run's
    found = view.preempted_workers(spec, CONFIG, RUN, outputs, "")
    assert list(found) == [1]
    assert ids[1] in found[1] and "Server.SpotInstanceTermination" in found[1]


def test_an_instance_replaced_by_a_recovery_is_not_reported_again(ec2):
    spec = stack_spec("aws-ec2-gpu")
    (old,) = _launch(ec2, RUN, 1)
    _reclaim(old, "Server.SpotInstanceShutdown")
    assert list(
        AwsEc2Gpu(client=ec2).preempted_workers(spec, CONFIG, RUN, {"instance_ids": [old], "private_ips": ["10.0.0.1"]}, "")
    ) == [0]
    (new,) = _launch(ec2, RUN, 1)  # the recovery's replacement, in the apply's outputs now
    outputs = {"instance_ids": [new], "private_ips": ["10.0.0.9"]}
    assert AwsEc2Gpu(client=ec2).preempted_workers(spec, CONFIG, RUN, outputs, "") == {}


def test_an_unreachable_ec2_api_raises_rather_than_reporting_nothing_or_everything():
    """The reaper logs the error and starts no recovery (test_preemption_rule)."""
    from botocore.config import Config as BotoConfig

    import boto3

    client = boto3.client(
        "ec2",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",  # nothing listens here
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=1),
    )
    with pytest.raises(Exception):
        AwsEc2Gpu(client=client).preempted_workers(stack_spec("aws-ec2-gpu"), CONFIG, RUN, {}, "")
