"""terraform/aws-ec2-gpu applied for real with its state in S3, as the AWS deploy target's
Terraform functions run it: the real hashicorp/aws provider from the filesystem mirror,
its endpoints and the S3 backend's pointed at moto on 127.0.0.1. The apply runs in one
"sandbox" (an Ephemera home of its own) and the destroy in another that never saw the
apply's files, as two Lambda invocations do.

S3 backend facts checked (Terraform's S3 backend documentation, >= 1.10): with
``use_lockfile = true`` the lock is the object ``<key>.tflock``, created with a
conditional PutObject (``If-None-Match: *``, which moto's S3 honours) and deleted when
the operation ends; no DynamoDB table is involved."""

from __future__ import annotations

import json

import pytest

from ephemera import layout
from ephemera.assembly import load_config
from ephemera.engines.terraform.config import engine_config
from ephemera.engines.terraform.engine import TerraformEngine
from tests.aws.conftest import aws_client
from tests.aws.stackfiles import stack_against
from tests.aws.test_moto_apply import _tagged, _variables

pytestmark = pytest.mark.slow  # a real Terraform apply and destroy against moto

RUN = "gpu-20261207T050000Z-0c0d0e0f1a2b3c4d"
BUCKET, PREFIX = "eph-tfstate", "ephemera/tfstate"


def _engine(stack, home, url) -> TerraformEngine:
    config = load_config(
        {
            "home": str(home),
            "storage": {"backend": "localhost", "bucket": "eph-state"},
            "localhost": {"root": str(home / "storage")},
            "engine": {"backend": "terraform"},
            "terraform": {"binary": "terraform", "state": {"backend": "s3", "bucket": BUCKET, "endpoint": url}},
            "workspace": {"name": "gpu", "stack": str(stack)},
            "workload": {"entry": "ephemera.workloads.smoke:main"},
        }
    )
    return TerraformEngine(config, engine_config(config))


def _objects(s3) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


@pytest.mark.timeout(900)
def test_the_aws_stack_keeps_its_state_in_s3_and_a_fresh_sandbox_destroys_it(aws_env, tmp_path):
    url = aws_env["url"]
    s3 = aws_client(url, "s3")
    s3.create_bucket(Bucket=BUCKET)
    stack = stack_against(url, tmp_path / "aws-ec2-gpu")
    plain, secure, _ = _variables(RUN, False, 1)
    workspace = plain["workspace"]

    applier = _engine(stack, tmp_path / "apply-sandbox", url)
    activity = applier.apply(workspace, RUN, plain, secure)
    assert activity.state == "COMPLETED", applier.activity_log(activity)
    key = layout.tf_state_key(PREFIX, workspace)
    assert key in _objects(s3) and layout.tf_lock_key(PREFIX, workspace) not in _objects(s3), "the lock was not released"
    state = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert state["outputs"]["run_id"]["value"] == RUN
    assert not (applier.workdir(workspace) / "terraform.tfstate").exists()
    kept = json.loads(s3.get_object(Bucket=BUCKET, Key=layout.tf_variables_key(PREFIX, workspace))["Body"].read())
    assert "vm_boot" not in kept and kept["run_id"] == RUN, "a sensitive variable was written beside the state"

    destroyer = _engine(stack, tmp_path / "destroy-sandbox", url)
    assert destroyer.workspaces() == [workspace] and destroyer.owner(workspace) == RUN
    assert destroyer.outputs(workspace)["vpc_id"] == applier.outputs(workspace)["vpc_id"]
    assert any(r.startswith("aws_instance.worker") for r in destroyer.resources(workspace))
    destroyed = destroyer.destroy(workspace)
    assert destroyed.state == "COMPLETED", destroyer.activity_log(destroyed)

    ec2, iam = aws_client(url, "ec2"), aws_client(url, "iam")
    for call, name in (
        ("describe_vpcs", "Vpcs"),
        ("describe_subnets", "Subnets"),
        ("describe_security_groups", "SecurityGroups"),
    ):
        assert _tagged(ec2, call, name, RUN) == [], f"{name} outlived the destroy"
    states = {i["State"]["Name"] for r in _tagged(ec2, "describe_instances", "Reservations", RUN) for i in r["Instances"]}
    assert states == {"terminated"}, states
    assert iam.list_roles()["Roles"] == [] and iam.list_instance_profiles()["InstanceProfiles"] == []
    assert _objects(s3) == [], "the state bucket keeps something of the destroyed run"
