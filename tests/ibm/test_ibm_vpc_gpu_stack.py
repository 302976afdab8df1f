"""terraform/ibm-vpc-gpu, parsed with python-hcl2 and checked: every resource tagged,
no inbound SSH unless debug_access, no secret variable at all (``vm_boot`` sensitive), the instances' identity
(metadata service on, the trusted profile linked), a current GPU profile, the newest
image by number, the real user_data rendered by the stack's own module; `terraform
validate` where the IBM provider can be installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import hcl2
import pytest

from tests.ibm.tfmodule import apply_module

pytestmark = pytest.mark.slow  # runs Terraform on the IBM stack

STACK = Path(__file__).resolve().parents[2] / "terraform" / "ibm-vpc-gpu"
# rules are parts of their group; terraform_data lives only in the state
NOT_TAGGABLE = {"ibm_is_security_group_rule", "terraform_data"}
RUN_VARIABLES = {"run_id", "workspace", "worker_count", "job_key", "state_bucket", "hard_deadline", "hard_timeout_seconds"}
SECRET_NAME = re.compile(r"secret|api_key|access_key|password|token|private_key")


def _unq(value):
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _load() -> dict:
    merged: dict = {"resource": {}, "variable": {}, "output": {}, "data": {}, "locals": {}}
    for path in sorted(STACK.glob("*.tf")):
        doc = hcl2.load(path.open())
        for block in doc.get("resource", []) + doc.get("data", []):
            kind = "resource" if block in doc.get("resource", []) else "data"
            for rtype, named in block.items():
                for name, body in named.items():
                    merged[kind].setdefault(_unq(rtype), {})[_unq(name)] = body
        for section in ("variable", "output"):
            for block in doc.get(section, []):
                for name, body in block.items():
                    merged[section][_unq(name)] = body
        for block in doc.get("locals", []):
            merged["locals"].update(block)
    return merged


@pytest.fixture(scope="module")
def stack() -> dict:
    return _load()


def test_every_resource_is_tagged_with_run_and_workspace(stack):
    tags = stack["locals"]["tags"]
    assert "var.run_id" in tags and "var.workspace" in tags
    resources = [(t, n, b) for t, named in stack["resource"].items() for n, b in named.items()]
    assert {t for t, _, _ in resources} >= {
        "ibm_is_vpc",
        "ibm_is_public_gateway",
        "ibm_is_subnet",
        "ibm_is_security_group",
        "ibm_is_instance",
    }
    for rtype, name, body in resources:
        if rtype in NOT_TAGGABLE:
            continue
        assert body.get("tags") == "${local.tags}", f"{rtype}.{name} is not tagged"
    boot = stack["resource"]["ibm_is_instance"]["worker"]["boot_volume"][0]
    assert boot["tags"] == "${local.tags}"


def test_no_inbound_ssh_unless_debug_access(stack):
    rules = stack["resource"]["ibm_is_security_group_rule"]
    assert any(_unq(r["direction"]) == "outbound" for r in rules.values())
    for name, rule in rules.items():
        if _unq(rule["direction"]) == "inbound":
            assert "var.debug_access" in str(rule.get("count")), f"inbound rule {name} exists without debug_access"
            assert _unq(rule["remote"]) != "0.0.0.0/0"
            assert rule["remote"] == "${var.debug_ssh_cidr}"
    for rtype in ("ibm_is_ssh_key", "ibm_is_floating_ip"):
        for name, body in stack["resource"][rtype].items():
            assert "var.debug_access" in str(body["count"]), f"{rtype}.{name} exists without debug_access"
    assert "var.debug_access" in stack["resource"]["ibm_is_instance"]["worker"]["keys"]
    debug = stack["variable"]["debug_access"]
    assert debug["default"] is False
    cidr_rule = stack["variable"]["debug_ssh_cidr"]["validation"][0]["condition"]
    assert "0.0.0.0/0" in cidr_rule


def test_no_variable_holds_a_secret(stack):
    """No credential is a Terraform variable: the VMs authenticate as their trusted profile
    (or read a one-time presigned credentials object), and in Schematics the provider
    uses the caller's token. The boot documents carry short-lived bearer URLs and per-run
    values, so ``vm_boot`` -- and only it -- is ``sensitive`` (Terraform: "Setting a
    variable as sensitive prevents Terraform from showing its value in the plan or apply
    output"), in the stack, in the user-data module and in that module's output."""
    variables = stack["variable"]
    assert RUN_VARIABLES | {"vm_boot", "bootstrap_script", "trusted_profile_id"} <= set(variables)
    assert not {n for n in variables if SECRET_NAME.search(n)}, "a variable is named like a secret"
    assert [n for n, v in variables.items() if v.get("sensitive")] == ["vm_boot"]
    module = hcl2.load((STACK / "modules" / "user-data" / "main.tf").open())
    module_vars = {_unq(k): v for block in module["variable"] for k, v in block.items()}
    module_outs = {_unq(k): v for block in module["output"] for k, v in block.items()}
    assert module_vars["vm_boot"].get("sensitive") is True and module_outs["user_data"].get("sensitive") is True
    local = {_unq(k): v for block in hcl2.load((STACK.parent / "local" / "main.tf").open())["variable"] for k, v in block.items()}
    assert local["vm_boot"].get("sensitive") is True
    for name, out in stack["output"].items():
        value = json.dumps(out["value"])
        for marker in ("vm_boot", "bootstrap", "user_data", "private_key"):
            assert marker not in value, f"output {name} exposes {marker}"


def test_instances_authenticate_as_the_trusted_profile(stack):
    """ibm_is_instance (provider schema): ``metadata_service`` {enabled, protocol "http"|"https",
    response_hop_limit 1-64} -- the service is off by default -- and
    ``default_trusted_profile_target`` ("The unique identifier or CRN of the default IAM
    trusted profile to use for this virtual server instance") with
    ``default_trusted_profile_auto_link`` (the link is deleted with the instance)."""
    worker = stack["resource"]["ibm_is_instance"]["worker"]
    meta = worker["metadata_service"][0]
    assert meta["enabled"] is True and meta["protocol"] == "${var.metadata_protocol}" and meta["response_hop_limit"] == 1
    assert "var.trusted_profile_id" in worker["default_trusted_profile_target"]
    assert "var.trusted_profile_id" in worker["default_trusted_profile_auto_link"]
    assert worker["user_data"] == "${module.user_data[count.index].user_data}"


def test_outputs_for_run_record_and_bridge(stack):
    assert {"instance_ids", "private_ips", "vpc_id", "workers", "run_id"} <= set(stack["output"])


def test_profile_default_is_current_gpu(stack):
    profile = stack["variable"]["profile"]
    assert _unq(profile["default"]) == "gx3-16x80x1l4"
    assert "^gx[0-9]" in profile["validation"][0]["condition"]
    assert not re.search(r"gp2|\bbx2\b", _unq(profile["default"]))
    assert stack["resource"]["ibm_is_instance"]["worker"]["profile"] == "${var.profile}"


def test_image_is_looked_up_by_name_unless_pinned_by_id(stack):
    """A prepared image comes by its id (``image_id``): the name lookup is then skipped."""
    assert stack["data"]["ibm_is_image"]["boot"]["name"] == "${local.image_name}"
    assert stack["data"]["ibm_is_image"]["boot"]["count"] == '${var.image_id == "" ? 1 : 0}'
    assert stack["resource"]["ibm_is_instance"]["worker"]["image"] == "${local.image_id}"
    assert stack["locals"]["image_id"] == '${var.image_id != "" ? var.image_id : data.ibm_is_image.boot[0].id}'
    assert "22-04" in stack["variable"]["ubuntu_version"]["validation"][0]["condition"]
    assert "var.image_name" in stack["locals"]["image_name"] and "module.newest_image.name" in stack["locals"]["image_name"]


def test_newest_image_compares_the_numbers_in_the_names(tmp_path):
    """IBM stock images are named like ``ibm-ubuntu-24-04-6-minimal-amd64-1`` (release, then
    build); a plain sort() puts ``-9-`` after ``-10-``: the module compares numbers."""
    names = [
        "ibm-ubuntu-24-04-9-minimal-amd64-3",
        "ibm-ubuntu-24-04-10-minimal-amd64-1",
        "ibm-ubuntu-24-04-10-minimal-amd64-2",
        "ibm-ubuntu-24-04-2-minimal-amd64-9",
        "ibm-ubuntu-22-04-11-minimal-amd64-1",
        "ibm-redhat-9-4-minimal-amd64-1",
    ]
    outputs, _ = apply_module(
        "newest-image", {"names": names, "pattern": "^ibm-ubuntu-24-04-([0-9]+)-minimal-amd64-([0-9]+)$"}, tmp_path / "img"
    )
    assert outputs["name"] == "ibm-ubuntu-24-04-10-minimal-amd64-2"
    none, _ = apply_module(
        "newest-image", {"names": ["other"], "pattern": "^ibm-ubuntu-24-04-([0-9]+)-minimal-amd64-([0-9]+)$"}, tmp_path / "none"
    )
    assert none["name"] == ""


def _terraform_cli() -> list[str] | None:
    for name in ("terraform", "tofu"):
        path = shutil.which(name)
        if path:
            return [path]
    return None


def test_terraform_validate(tmp_path):
    cli = _terraform_cli()
    if cli is None:
        pytest.skip("no terraform or tofu binary on PATH: `terraform validate` needs one (and the IBM provider)")
    work = tmp_path / "stack"
    shutil.copytree(STACK, work)
    init = subprocess.run(
        cli + ["init", "-backend=false", "-input=false", "-no-color"], cwd=work, capture_output=True, text=True, timeout=240
    )
    if init.returncode != 0:
        lines = [ln.strip("│ ").strip() for ln in (init.stderr or init.stdout).splitlines()]
        errors = [ln for ln in lines if ln.startswith("Error:")] or [ln for ln in lines if ln][-1:]
        pytest.skip("IBM-Cloud/ibm provider not available (no registry access?): " + " | ".join(errors[:2]))
    result = subprocess.run(cli + ["validate", "-no-color"], cwd=work, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
