"""terraform/aws-ec2-gpu, parsed with python-hcl2 and checked: every resource tagged with
the run, no inbound traffic unless debug_access, no secret variable (``vm_boot`` sensitive),
IMDSv2 only, an OS power-off that terminates, spot behind one variable, GPU types only,
and an instance profile scoped to the run's prefixes as Ephemera hands them over. The
rendered parts (the newest image by number, the user_data, the GPU table) are in
test_aws_render.py."""

from __future__ import annotations

import json
import re

import hcl2
import pytest

from ephemera import layout
from ephemera.bundle.delivery import prefixes_variable
from ephemera.storage.spec import RunScope
from tests.aws.stackfiles import STACK

SECRET_NAME = re.compile(r"secret|api_key|access_key|password|token|private_key")
RUN_VARIABLES = {
    "run_id",
    "workspace",
    "worker_count",
    "job_key",
    "state_bucket",
    "storage_backend",
    "hard_deadline",
    "hard_timeout_seconds",
    "vm_boot",
    "bootstrap_script",
    "run_prefixes",
}


def _unq(value):
    return value[1:-1] if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"' else value


def _plain(node):
    """The parsed document with string literals and keys unquoted."""
    if isinstance(node, dict):
        return {_unq(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return _unq(node)


def _load(directory) -> dict:
    merged: dict = {"resource": {}, "variable": {}, "output": {}, "data": {}, "locals": {}, "provider": {}, "module": {}}
    for path in sorted(directory.glob("*.tf")):
        doc = _plain(hcl2.load(path.open()))
        for kind in ("resource", "data"):
            for block in doc.get(kind, []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        merged[kind].setdefault(_unq(rtype), {})[_unq(name)] = body
        for section in ("variable", "output", "provider", "module"):
            for block in doc.get(section, []):
                merged[section].update({_unq(k): v for k, v in block.items()})
        for block in doc.get("locals", []):
            merged["locals"].update(block)
    return merged


@pytest.fixture(scope="module")
def stack() -> dict:
    return _load(STACK)


def test_every_resource_is_tagged_with_run_and_workspace(stack):
    """The provider's ``default_tags`` tag every taggable resource it creates; volumes an
    instance creates get ``volume_tags`` (default_tags do not reach them)."""
    tags = stack["locals"]["tags"]
    assert "var.run_id" in tags and "var.workspace" in tags and "ephemera:run" in tags
    assert stack["provider"]["aws"]["default_tags"][0]["tags"] == "${local.tags}"
    types = set(stack["resource"])
    assert types >= {"aws_vpc", "aws_subnet", "aws_security_group", "aws_instance", "aws_iam_role", "aws_iam_instance_profile"}
    for rtype, named in stack["resource"].items():
        for name, body in named.items():
            assert "var.run_id" not in str(body.get("tags", "")), f"{rtype}.{name}: the run tags come from default_tags only"
    assert stack["resource"]["aws_instance"]["worker"]["volume_tags"] == "${local.tags}"


def test_no_inbound_traffic_unless_debug_access(stack):
    assert stack["resource"]["aws_security_group"]["run"].get("ingress") is None
    assert set(stack["resource"]["aws_vpc_security_group_egress_rule"]) == {"all"}
    for name, rule in stack["resource"]["aws_vpc_security_group_ingress_rule"].items():
        assert "var.debug_access" in str(rule["count"]), f"ingress rule {name} exists without debug_access"
        assert rule["cidr_ipv4"] == "${var.debug_ssh_cidr}" and rule["from_port"] == rule["to_port"] == 22
    assert "var.debug_access" in str(stack["resource"]["aws_key_pair"]["debug"]["count"])
    assert "var.debug_access" in stack["resource"]["aws_instance"]["worker"]["key_name"]
    assert stack["variable"]["debug_access"]["default"] is False
    assert "0.0.0.0/0" in stack["variable"]["debug_ssh_cidr"]["validation"][0]["condition"]


def test_no_variable_holds_a_secret(stack):
    """No credential is a Terraform variable: the provider uses the applying machine's default
    chain, the VMs their instance profile. ``vm_boot`` (the run key, short-lived URLs) -- and
    only it -- is ``sensitive``, in the stack, the user-data module and its output."""
    variables = stack["variable"]
    assert RUN_VARIABLES <= set(variables)
    assert not {n for n in variables if SECRET_NAME.search(n)}, "a variable is named like a secret"
    assert [n for n, v in variables.items() if v.get("sensitive")] == ["vm_boot"]
    module = _load(STACK / "modules" / "user-data")
    assert module["variable"]["vm_boot"].get("sensitive") is True and module["output"]["user_data"].get("sensitive") is True
    for name, out in stack["output"].items():
        for marker in ("vm_boot", "bootstrap", "user_data", "private_key"):
            assert marker not in json.dumps(out["value"]), f"output {name} exposes {marker}"
    provider = json.dumps(stack["provider"]["aws"])
    assert "access_key" not in provider and "endpoints" not in provider, "keys and endpoints come from outside the stack"


def test_instances_use_imdsv2_terminate_on_power_off_and_run_as_the_profile(stack):
    """aws_instance: ``metadata_options.http_tokens = "required"`` (IMDSv2: a session token on
    every metadata request), ``instance_initiated_shutdown_behavior = "terminate"`` (the VM's
    own deadline power-off terminates it, ending its billing), ``iam_instance_profile``."""
    worker = stack["resource"]["aws_instance"]["worker"]
    meta = worker["metadata_options"][0]
    assert meta["http_tokens"] == "required" and meta["http_endpoint"] == "enabled" and meta["http_put_response_hop_limit"] == 1
    assert worker["instance_initiated_shutdown_behavior"] == "terminate"
    assert worker["iam_instance_profile"] == "${aws_iam_instance_profile.vm.name}"
    assert worker["user_data_base64"] == "${base64gzip(module.user_data[count.index].user_data)}"
    assert worker["root_block_device"][0]["delete_on_termination"] is True


def test_spot_is_one_variable(stack):
    """``instance_market_options`` only when ``spot``: a one-time request, terminated on interruption."""
    worker = stack["resource"]["aws_instance"]["worker"]
    market = worker["dynamic"][0]["instance_market_options"]
    assert market["for_each"] == "${var.spot ? [1] : []}"
    options = market["content"][0]["spot_options"][0]
    assert options["spot_instance_type"] == "one-time" and options["instance_interruption_behavior"] == "terminate"
    assert market["content"][0]["market_type"] == "spot" and stack["variable"]["spot"]["default"] is False


def test_the_instance_profile_is_scoped_to_the_run_prefixes_ephemera_hands_over(stack):
    """The ``run_prefixes`` object the stack declares is the one the controller builds
    (:func:`prefixes_variable`, from :func:`ephemera.layout.run_prefixes`), and its
    validation refuses IAM wildcards as the STS session policy does."""
    declared = stack["variable"]["run_prefixes"]["type"]
    scope = RunScope(
        run_id="r-1",
        state_bucket="s",
        output_bucket="o",
        prefixes=layout.run_prefixes("r-1", "outputs/r-1/", "ab" * 32, inputs=(("in", "inbox/a.txt"),)),
        seconds=900,
    )
    given = prefixes_variable(scope)
    assert given["inputs"] == [{"bucket": "in", "key": "inbox/a.txt"}]  # the event's object, that key only
    assert set(re.findall(r"(\w+)\s*=", declared.replace("${object({", ""))) == set(given) | set(given["inputs"][0]), declared
    assert given["read"] and given["write"] and given["output"] == ["outputs/r-1/"]
    assert "[*?$]" in stack["variable"]["run_prefixes"]["validation"][0]["condition"]
    role = stack["resource"]["aws_iam_role"]["vm"]
    assert "ec2.amazonaws.com" in role["assume_role_policy"]
    assert stack["resource"]["aws_iam_role_policy"]["run_prefixes"]["policy"] == "${jsonencode(local.vm_policy)}"
    assert not {"aws_iam_role_policy_attachment", "aws_iam_policy_attachment"} & set(stack["resource"]), "no managed policy"
    ibm = _load(STACK.parent / "ibm-vpc-gpu")["variable"]
    assert "run_prefixes" in ibm, "Schematics sends every run variable: the IBM stack declares it too"


def test_images_and_types(stack):
    types = stack["variable"]["instance_type"]
    assert _unq(types["default"]) == "g6.xlarge"
    assert "ubuntu-24.04" in stack["variable"]["image"]["validation"][0]["condition"]
    assert "dlami-base" in stack["variable"]["image"]["validation"][0]["condition"]
    assert stack["resource"]["aws_instance"]["worker"]["ami"] == "${local.image_id}"
    assert "module.newest_image.id" in stack["locals"]["image_id"] and "var.image_id" in stack["locals"]["image_id"]


def test_outputs_for_run_record_and_bridge(stack):
    assert {"instance_ids", "private_ips", "vpc_id", "workers", "run_id", "vm_role_arn", "instance_profile"} <= set(
        stack["output"]
    )


def test_cost_knows_the_stacks_instance_types(stack):
    """The stack's price table (its stack.toml) has every type the stack accepts (estimates,
    said so), with the GPUs the stack promises; a run's profile is its configured
    ``instance_type``, else the stack's default."""
    from ephemera.assembly import load_config
    from ephemera.model.cost import price_table, run_profile
    from ephemera.model.runs import RunRecord
    from ephemera.stack import stack_spec

    spec = stack_spec("aws-ec2-gpu")
    prices = price_table(load_config({}, engine_checks=False), [spec])
    rule = (
        re.search(r'can\(regex\("([^"]+)", var\.instance_type\)\)', (STACK / "variables.tf").read_text())
        .group(1)
        .replace("\\\\", "\\")
    )
    aws = {name for name in prices if re.search(rule, name)}
    assert len(aws) == 26 and aws == set(prices) and all(prices[name].estimate and prices[name].hourly > 0 for name in aws)
    assert {name: prices[name].gpus for name in ("g6.xlarge", "g6e.12xlarge", "g5.48xlarge", "p5.48xlarge")} == {
        "g6.xlarge": 1,
        "g6e.12xlarge": 4,
        "g5.48xlarge": 8,
        "p5.48xlarge": 8,
    }
    assert spec.profile_variable == "instance_type" and spec.default_profile() == "g6.xlarge"
    run = RunRecord(run_id="r", workspace="w", engine="terraform")
    configured = load_config(
        {
            "workspace": {"stack": "aws-ec2-gpu", "variables": {"instance_type": "g6e.xlarge"}},
            "storage": {"backend": "aws_s3", "bucket": "ephemera-test"},
        },
        engine_checks=False,
    )
    assert run_profile(run, configured, spec) == "g6e.xlarge"
    assert run_profile(run, load_config({}, engine_checks=False), spec) == "g6.xlarge"
    run.outputs = {"workers": [{"worker": 0, "instance_type": "g5.xlarge", "profile": "g5.xlarge"}]}
    assert run_profile(run, load_config({}, engine_checks=False), spec) == "g5.xlarge"


def test_names_tell_runs_apart_whatever_the_workspace_name(stack):
    """IAM role and instance profile names are unique in the account (64 chars at most): the
    shortened run id is followed by a hash of the whole id, so two runs of a workspace with a
    long name, whose ids differ only after the cut, still get different names."""
    name = stack["locals"]["name"]
    assert "sha256(var.run_id)" in name and "0, 30" in name
    assert stack["resource"]["aws_iam_role"]["vm"]["name"] == "${local.name}-vm"
