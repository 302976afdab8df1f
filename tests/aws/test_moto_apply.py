"""terraform/aws-ec2-gpu applied for real, offline: the real hashicorp/aws 5.100.0 provider
(from a filesystem mirror, through a CLI ``provider_installation`` config) run by
Ephemera's Terraform engine, its endpoints pointed at moto on 127.0.0.1 by an override
file the test writes beside a copy of the stack. Two runs at once, one on spot capacity
and one on demand; what moto holds is then compared with what the stack promises, and
after the destroys moto holds nothing of either run.

EC2 facts checked (EC2 API reference): ``RunInstances`` ``InstanceMarketOptions``
(MarketType "spot") makes ``InstanceLifecycle`` "spot" in DescribeInstances;
``MetadataOptions.HttpTokens`` "required" means IMDSv2 only;
``InstanceInitiatedShutdownBehavior`` "terminate" makes an OS shutdown terminate the
instance; terminated instances stay visible in DescribeInstances for a while, in state
"terminated"."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from ephemera import layout
from ephemera.bundle.delivery import bootstrap_script, prefixes_variable
from ephemera.assembly import load_config
from ephemera.engines.terraform.config import engine_config
from ephemera.engines.terraform.engine import TerraformEngine
from ephemera.storage.aws_s3.sts import session_policy
from ephemera.storage.spec import RunScope
from tests.aws.conftest import aws_client
from tests.aws.stackfiles import stack_against

pytestmark = pytest.mark.slow  # real Terraform applies against moto

RUNS = {"spot": "gpu-20261207T040000Z-5f1c0a9e2b7d4e6f", "ondemand": "gpu-20261207T040001Z-0a1b2c3d4e5f6a7b"}


def _variables(run_id: str, spot: bool, workers: int) -> tuple[dict, dict, dict]:
    """(plain, secure, the policy STS would give the same run's keys) as the controller makes them."""
    scope = RunScope(
        run_id=run_id,
        state_bucket="eph-state",
        output_bucket="eph-out",
        prefixes=layout.run_prefixes(
            run_id, f"outputs/{run_id}/", "ab" * 32, inputs=(("eph-in", "inbox/notes.txt"),) if spot else ()
        ),
        seconds=3600,
    )
    docs = [
        base64.b64encode(json.dumps({"run_id": run_id, "worker": w, "state_bucket": "eph-state"}).encode()).decode()
        for w in range(workers)
    ]
    plain = {
        "run_id": run_id,
        "workspace": f"ws-{run_id[-4:]}",
        "worker_count": workers,
        "job_key": layout.job_key(run_id),
        "state_bucket": "eph-state",
        "storage_backend": "aws_s3",
        "hard_deadline": "2026-12-07T06:00:00+00:00",
        "hard_timeout_seconds": 7200,
        "bootstrap_script": bootstrap_script(),
        "run_prefixes": prefixes_variable(scope),
        "image_owners": ["self"],
        "spot": spot,
        "instance_type": "g6e.xlarge" if spot else "g6.xlarge",
    }
    return plain, {"vm_boot": docs}, session_policy(scope)


def _engine(stack, home) -> TerraformEngine:
    config = load_config(
        {
            "home": str(home),
            "storage": {"backend": "localhost", "bucket": "eph-state"},
            "localhost": {"root": str(home / "storage")},
            "engine": {"backend": "terraform"},
            "terraform": {"binary": "terraform"},
            "workspace": {"name": "gpu", "stack": str(stack)},
            "workload": {"entry": "ephemera.workloads.smoke:main"},
        }
    )
    return TerraformEngine(config, engine_config(config))


def _tagged(ec2, call: str, key: str, run_id: str) -> list:
    return getattr(ec2, call)(Filters=[{"Name": "tag:ephemera:run", "Values": [run_id]}])[key]


def _recover(engine, run: tuple[dict, dict, dict], ec2) -> None:
    """The spot contract: the same run re-applied with ``recovery`` + 1 (after a preemption)
    gets new instances, while its VPC, subnet, security group and role stay; the same
    ``recovery`` again changes nothing.

    Played on the on-demand run: moto does not read a spot instance's market options back
    (the provider then plans ``instance_market_options # forces replacement`` on every
    re-apply of a spot run against moto, which real EC2 does not), so only an on-demand run
    tells a replacement the recovery asked for from one moto causes. The trigger does not
    depend on the market."""
    plain, secure, _ = run
    workspace, run_id = plain["workspace"], plain["run_id"]

    def apply(recovery: int) -> dict:
        activity = engine.apply(workspace, run_id, {**plain, "recovery": recovery}, secure)
        assert activity.state == "COMPLETED", engine.activity_log(activity)
        return engine.outputs(workspace)

    first = engine.outputs(workspace)
    again = apply(0)
    assert again["instance_ids"] == first["instance_ids"], "a re-apply of the same recovery replaced the VMs"
    recovered = apply(1)
    assert len(recovered["instance_ids"]) == len(first["instance_ids"])
    assert not set(recovered["instance_ids"]) & set(first["instance_ids"])
    assert [w["worker"] for w in recovered["workers"]] == list(range(plain["worker_count"]))
    for key in ("vpc_id", "subnet_id", "security_group_id", "vm_role_arn", "instance_profile"):
        assert recovered[key] == first[key], f"a recovery replaced {key}"
    by_id = {i["InstanceId"]: i for r in _tagged(ec2, "describe_instances", "Reservations", run_id) for i in r["Instances"]}
    assert {by_id[i]["State"]["Name"] for i in first["instance_ids"]} == {"terminated"}
    assert {by_id[i]["State"]["Name"] for i in recovered["instance_ids"]} == {"running"}


@pytest.mark.timeout(1500)  # two applies, a recovery and destroys of 13 resources each: 5-10 min on a loaded 2-core machine
def test_apply_and_destroy_spot_and_on_demand_runs_against_moto(aws_env, tmp_path):
    url = aws_env["url"]
    engine = _engine(stack_against(url, tmp_path / "aws-ec2-gpu"), tmp_path / "home")
    runs = {kind: _variables(run_id, kind == "spot", 2 if kind == "spot" else 1) for kind, run_id in RUNS.items()}

    def apply(kind):
        plain, secure, _ = runs[kind]
        return engine.apply(plain["workspace"], plain["run_id"], plain, secure)

    with ThreadPoolExecutor(2) as pool:
        applied = dict(zip(runs, pool.map(apply, runs)))
    for kind, activity in applied.items():
        assert activity.state == "COMPLETED", engine.activity_log(activity)

    ec2, iam = aws_client(url, "ec2"), aws_client(url, "iam")
    newest = aws_env["images"]["20250410.1"]
    for kind, (plain, _, sts_policy) in runs.items():
        run_id, workspace = plain["run_id"], plain["workspace"]
        outputs = engine.outputs(workspace)
        assert outputs["run_id"] == run_id and outputs["image"] == newest, "not the newest image by number"
        assert [(w["profile"], w["market"]) for w in outputs["workers"]] == [
            (plain["instance_type"], "spot" if kind == "spot" else "on-demand")
        ] * plain["worker_count"]
        vpcs = _tagged(ec2, "describe_vpcs", "Vpcs", run_id)
        assert [v["VpcId"] for v in vpcs] == [outputs["vpc_id"]]
        assert [s["SubnetId"] for s in _tagged(ec2, "describe_subnets", "Subnets", run_id)] == [outputs["subnet_id"]]
        assert len(_tagged(ec2, "describe_internet_gateways", "InternetGateways", run_id)) == 1
        groups = _tagged(ec2, "describe_security_groups", "SecurityGroups", run_id)
        assert [g["GroupId"] for g in groups] == [outputs["security_group_id"]]
        assert groups[0]["IpPermissions"] == [], "the security group admits inbound traffic"
        assert [r["IpRanges"] for r in groups[0]["IpPermissionsEgress"]] == [[{"CidrIp": "0.0.0.0/0"}]]

        instances = [i for r in _tagged(ec2, "describe_instances", "Reservations", run_id) for i in r["Instances"]]
        assert sorted(i["InstanceId"] for i in instances) == sorted(outputs["instance_ids"])
        assert len(instances) == plain["worker_count"]
        for vm in instances:
            tags = {t["Key"]: t["Value"] for t in vm["Tags"]}
            assert tags["ephemera:run"] == run_id and tags["ephemera:workspace"] == workspace
            assert vm.get("InstanceLifecycle") == ("spot" if kind == "spot" else None), vm.get("InstanceLifecycle")
            assert vm["InstanceType"] == plain["instance_type"] and vm["ImageId"] == newest
            assert vm["MetadataOptions"]["HttpTokens"] == "required" and vm["MetadataOptions"]["HttpEndpoint"] == "enabled"
            assert vm["IamInstanceProfile"]["Arn"].endswith(f"instance-profile/{outputs['instance_profile']}")
            shutdown = ec2.describe_instance_attribute(InstanceId=vm["InstanceId"], Attribute="instanceInitiatedShutdownBehavior")
            assert shutdown["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"
            user_data = ec2.describe_instance_attribute(InstanceId=vm["InstanceId"], Attribute="userData")["UserData"]["Value"]
            assert len(base64.b64decode(user_data)) <= 16 * 1024, "EC2 takes at most 16 KB of user data"
            volumes = [
                v for v in ec2.describe_volumes()["Volumes"] if any(a["InstanceId"] == vm["InstanceId"] for a in v["Attachments"])
            ]
            assert volumes and all({"Key": "ephemera:run", "Value": run_id} in v.get("Tags", []) for v in volumes)

        role = outputs["vm_role_arn"].rsplit("/", 1)[1]
        profile = iam.get_instance_profile(InstanceProfileName=outputs["instance_profile"])["InstanceProfile"]
        assert [r["RoleName"] for r in profile["Roles"]] == [role]
        assert {"Key": "ephemera:run", "Value": run_id} in iam.list_role_tags(RoleName=role)["Tags"]
        trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
        assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "ec2.amazonaws.com"}]
        names = iam.list_role_policies(RoleName=role)["PolicyNames"]
        policy = iam.get_role_policy(RoleName=role, PolicyName=names[0])["PolicyDocument"]
        # the instance profile grants what the run's STS keys would: the run's prefixes, nothing more
        assert policy == sts_policy, json.dumps(policy, indent=1)
        assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []

    _recover(engine, runs["ondemand"], ec2)  # then the destroy below removes the replacements too

    with ThreadPoolExecutor(2) as pool:
        destroyed = list(pool.map(lambda kind: engine.destroy(runs[kind][0]["workspace"]), runs))
    for activity in destroyed:
        assert activity.state == "COMPLETED", engine.activity_log(activity)
    for kind, (plain, _, _) in runs.items():
        run_id = plain["run_id"]
        assert engine.resources(plain["workspace"]) == []
        for call, key in (
            ("describe_vpcs", "Vpcs"),
            ("describe_subnets", "Subnets"),
            ("describe_security_groups", "SecurityGroups"),
            ("describe_internet_gateways", "InternetGateways"),
            ("describe_route_tables", "RouteTables"),
            ("describe_volumes", "Volumes"),
        ):
            assert _tagged(ec2, call, key, run_id) == [], f"{key} of run {run_id} outlived the destroy"
        states = {i["State"]["Name"] for r in _tagged(ec2, "describe_instances", "Reservations", run_id) for i in r["Instances"]}
        assert states == {"terminated"}, states
    assert iam.list_roles()["Roles"] == [] and iam.list_instance_profiles()["InstanceProfiles"] == []


@pytest.mark.timeout(600)
def test_plan_prices_the_stacks_instances(aws_env, tmp_path):
    """``ephemera plan`` of the stack (a Terraform plan against moto, nothing created): the
    planned instances, their type and its price, from the config's ``instance_type``."""
    from ephemera.context import Context
    from ephemera.lifecycle.plan import plan_workspace

    url = aws_env["url"]
    home = tmp_path / "home"
    config = load_config(
        {
            "home": str(home),
            "storage": {"backend": "aws_s3", "bucket": "eph-state"},
            "aws_s3": {"endpoint": url, "region": "us-east-1"},
            "engine": {"backend": "terraform"},
            "terraform": {"binary": "terraform"},
            "workspace": {
                "name": "gpu",
                "stack": str(stack_against(url, tmp_path / "aws-ec2-gpu")),
                "variables": {"worker_count": 3, "instance_type": "g5.12xlarge", "image_owners": ["self"]},
            },
            "workload": {"entry": "ephemera.workloads.smoke:main"},
        }
    )
    report = plan_workspace(Context(config))
    creates = {r.address.split("[")[0] for r in report.plan.resources if r.action == "create"}
    assert {"aws_instance.worker", "aws_iam_role.vm", "aws_iam_instance_profile.vm", "aws_vpc.run"} <= creates, creates
    assert (report.instances, report.profile, report.gpus) == (3, "g5.12xlarge", 12)
    assert report.price is not None and report.per_hour == pytest.approx(3 * report.price.hourly)
    ec2 = aws_client(url, "ec2")
    assert _tagged(ec2, "describe_vpcs", "Vpcs", "gpu-plan") == [], "a plan created something"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("field, value", [("output", ["outputs/*"]), ("inputs", [{"bucket": "eph-in", "key": "inbox/*"}])])
def test_a_prefix_with_an_iam_wildcard_is_refused_before_anything_is_made(aws_env, tmp_path, field, value):
    """An attacker who could put ``*`` into a run's prefixes (an output prefix, a run id) would
    widen the VMs' role to other runs' objects: the stack refuses such a ``run_prefixes``, as the
    STS session policy does, before any resource exists."""
    from ephemera.errors import EngineError

    url = aws_env["url"]
    engine = _engine(stack_against(url, tmp_path / "aws-ec2-gpu"), tmp_path / "home")
    plain, secure, _ = _variables("gpu-20261207T040002Z-1a2b3c4d5e6f7a8b", False, 1)
    plain["run_prefixes"] = {**plain["run_prefixes"], field: value}  # an event's key is checked like a prefix
    with pytest.raises(EngineError) as refused:
        engine.plan(plain["workspace"], plain["run_id"], plain, secure)
    assert "without IAM wildcards" in (refused.value.log_tail or ""), refused.value.log_tail
    assert _tagged(aws_client(url, "ec2"), "describe_vpcs", "Vpcs", plain["run_id"]) == []
