"""Every stack takes ``spot`` and ``recovery`` alike (the spot contract shared by the stacks,
the VM and the recovery): ``spot`` (bool, default false) is the user's, through
``workspace.variables``; ``recovery`` (number, default 0, a whole number >= 0) is set by
Ephemera for each apply of a run, and is part of every VM's replace trigger, so the same
run re-applied with ``recovery + 1`` gets new VMs in place of the preempted ones, while a
re-apply with the same value keeps them.

Terraform facts relied on (Terraform language docs, "The terraform_data Managed
Resource Type" and "The lifecycle Meta-Argument"): a change of ``triggers_replace``
replaces the ``terraform_data`` resource; ``replace_triggered_by`` replaces the resource
when a referenced resource is replaced or updated.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import hcl2
import pytest

from ephemera.engines.terraform.runners import LibRunner
from ephemera.stack import STACKS, stack_spec

CLOUD_VMS = {"ibm-vpc-gpu": "ibm_is_instance", "aws-ec2-gpu": "aws_instance"}


def _unq(value):
    return value[1:-1] if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"' else value


def _resources(folder: Path) -> dict[tuple[str, str], dict]:
    found = {}
    for tf in sorted(folder.glob("*.tf")):
        for block in hcl2.load(tf.open()).get("resource", []):
            found.update({(_unq(t), _unq(n)): body for t, named in block.items() for n, body in named.items()})
    return found


@pytest.mark.parametrize("name", list(STACKS))
def test_every_stack_takes_spot_from_the_user_and_recovery_from_ephemera(name):
    spec = stack_spec(name)
    spot, recovery = spec.variables["spot"], spec.variables["recovery"]
    assert (spot.type, spot.default, spot.set_by, spot.required) == ("bool", False, "user", False)
    assert (recovery.type, recovery.default, recovery.set_by, recovery.required) == ("number", 0, "ephemera", False)


@pytest.mark.parametrize("name", sorted(CLOUD_VMS))
def test_a_new_recovery_replaces_every_cloud_vm(name):
    """The instances are replaced with ``terraform_data.generation``, whose only trigger is ``var.recovery``."""
    resources = _resources(stack_spec(name).folder)
    generation = resources[("terraform_data", "generation")]
    assert generation["triggers_replace"] == "${var.recovery}"
    vms = [body for (rtype, _), body in resources.items() if rtype == CLOUD_VMS[name]]
    assert vms and all(body["lifecycle"][0]["replace_triggered_by"] == ["${terraform_data.generation}"] for body in vms)


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory) -> tuple[Path, LibRunner]:
    """A copy of the local stack, initialised: its VMs' "python" is /bin/true, so an apply runs
    the real stack without starting any agent."""
    if shutil.which("true") is None:
        pytest.skip("no `true` program here")
    work = tmp_path_factory.mktemp("local-stack")
    for tf in stack_spec("local").folder.glob("*.tf"):
        shutil.copy(tf, work / tf.name)
    runner = LibRunner()
    code, out = runner.run(work, "init")
    assert code == 0, out
    return work, runner


def _apply(work: Path, runner: LibRunner, **variables) -> tuple[int, str, dict]:
    values = {
        "run_id": "gpu-20261207T050000Z-0123456789abcdef",
        "workspace": "gpu",
        "worker_count": 2,
        "python": shutil.which("true"),
        "boot_dir": str(work / "boot"),
        "agent_dir": str(work / "agents"),
        **variables,
    }
    (work / "run.auto.tfvars.json").write_text(json.dumps(values))
    code, out = runner.run(work, "apply")
    state = work / "terraform.tfstate"
    outputs = {k: v["value"] for k, v in json.loads(state.read_text())["outputs"].items()} if state.exists() else {}
    return code, out, outputs


@pytest.mark.slow  # real Terraform applies of the local stack
def test_the_local_stack_replaces_its_vms_for_a_recovery_and_records_spot(local_stack):
    work, runner = local_stack
    code, out, first = _apply(work, runner)
    assert code == 0, out
    assert [a["market"] for a in first["agents"]] == ["on-demand", "on-demand"]

    code, out, same = _apply(work, runner)  # the same run, the same recovery: the same VMs
    assert code == 0, out
    assert same["instance_ids"] == first["instance_ids"]

    code, out, recovered = _apply(work, runner, recovery=1, spot=True)
    assert code == 0, out
    assert not set(recovered["instance_ids"]) & set(first["instance_ids"]), "a recovery kept a lost VM"
    assert [a["worker"] for a in recovered["agents"]] == [0, 1]
    assert [a["market"] for a in recovered["agents"]] == ["spot", "spot"], "spot is recorded as each VM's market"


@pytest.mark.slow  # real Terraform plans of the local stack
@pytest.mark.parametrize("bad", [-1, 1.5])
def test_a_recovery_that_is_not_a_count_is_refused_before_anything_changes(local_stack, bad):
    work, runner = local_stack
    code, out, _ = _apply(work, runner, recovery=bad)
    assert code != 0 and "recovery must be a whole number >= 0" in out, out
