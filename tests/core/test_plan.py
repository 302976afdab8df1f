"""`ephemera plan` with the local Terraform engine: the plan of the local stack, its
VM and GPU count and cost, and proof that nothing was created."""

from __future__ import annotations

from pathlib import Path

import pytest

from ephemera.cli import main
from ephemera.context import Context
from ephemera.engines.plan import parse_plan
from ephemera.lifecycle.plan import plan_workspace
from tests.helpers import live_agents


def everything_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()) if path.exists() else []


def test_plan_of_the_local_stack_lists_its_vms_and_creates_nothing(local_config, home, capsys):
    raw = local_config(
        workspace={"name": "ws", "stack": "local", "variables": {"worker_count": 2}},
        cost={"prices": {"local": {"hourly": 0.5, "as_of": "2026-12-01", "source": "a test's own price"}}},
        timeouts={"hard": "2h"},
    )
    ctx = Context(raw)
    ctx.storage.create_bucket(ctx.config.state_bucket)
    before_storage = everything_under(home / "storage")
    report = plan_workspace(ctx)
    assert [(r.address, r.action) for r in report.plan.resources] == [
        ("terraform_data.vm[0]", "create"),
        ("terraform_data.vm[1]", "create"),
    ]
    assert report.plan.summary == "Plan: 2 to add, 0 to change, 0 to destroy."
    assert report.instances == 2 and report.profile == "local" and report.gpus == 0
    assert report.per_hour == pytest.approx(1.0) and report.for_hard_timeout == pytest.approx(2.0)

    # nothing was created: no workspace, no run folder, no VM, no object, no scratch folder
    assert not (home / "workspaces").exists() or not any((home / "workspaces").iterdir())
    assert not (home / "runs").exists() and not any((home / "plans").iterdir())
    assert everything_under(home / "storage") == before_storage
    assert list(ctx.ledger.list()) == []
    assert ctx.engine.resources("ws") == [] and live_agents(home) == []

    assert main(["--config", str(_write(raw, home)), "plan"]) == 0
    out = capsys.readouterr().out
    assert "terraform_data.vm[1]  create" in out and "instances: 2 x local" in out
    assert "estimated cost: 1.00 USD per hour; 2.00 USD at most, for the hard timeout (2h00m)" in out
    assert "as of 2026-12-01: a test's own price" in out and "nothing was created" in out


def _write(raw: dict, home: Path) -> Path:
    import yaml

    path = home / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_plan_parser_reads_actions_and_top_level_attributes_only():
    text = """
  # ibm_is_instance.worker[0] will be created
  + resource "ibm_is_instance" "worker" {
      + profile = "gx3-32x160x2l4"
      + boot_volume {
          + profile = "general-purpose"
        }
    }

  # ibm_is_floating_ip.debug[0] will be destroyed
  - resource "ibm_is_floating_ip" "debug" {
      - name = "x" -> null
    }

  # data.ibm_is_image.boot will be read during apply
 <= data "ibm_is_image" "boot" {
      + name = "ibm-ubuntu-24-04"
    }

Plan: 1 to add, 0 to change, 1 to destroy.
"""
    plan = parse_plan(text)
    assert [(r.address, r.action, r.type) for r in plan.resources] == [
        ("ibm_is_instance.worker[0]", "create", "ibm_is_instance"),
        ("ibm_is_floating_ip.debug[0]", "destroy", "ibm_is_floating_ip"),
        ("data.ibm_is_image.boot", "read", "ibm_is_image"),
    ]
    assert plan.resources[0].attributes == {"profile": "gx3-32x160x2l4"}
    assert plan.summary == "Plan: 1 to add, 0 to change, 1 to destroy."
