"""`ephemera plan` with the Schematics engine, against the fake Schematics API: a plan
job (``POST /v1/workspaces/{id}/plan`` with the refresh token; apply and destroy are PUTs), polled until it
ends, its log read as the plan; nothing is applied and the workspace keeps no resource."""

from __future__ import annotations

import pytest

from ephemera.cli.plan import format_plan
from ephemera.context import Context
from ephemera.lifecycle.plan import plan_workspace
from ephemera.stack import stack_spec
from tests.ibm.conftest import API_KEY


def test_a_schematics_plan_job_gives_resources_gpus_and_cost_and_creates_nothing(ibm_config, schematics, tmp_path):
    raw = {
        **ibm_config,
        "home": str(tmp_path / "home"),
        "workspace": {"name": "default", "stack": "ibm-vpc-gpu", "variables": {"worker_count": 2}},
        "timeouts": {"hard": "4h"},
    }
    ctx = Context(raw)
    ctx.engine._sleep = lambda s: None
    report = plan_workspace(ctx)
    assert [r.address for r in report.plan.resources] == [
        "ibm_is_vpc.run",
        "ibm_is_subnet.run",
        "ibm_is_instance.worker[0]",
        "ibm_is_instance.worker[1]",
    ]
    assert report.plan.summary == "Plan: 4 to add, 0 to change, 0 to destroy."
    hourly = stack_spec("ibm-vpc-gpu").prices["gx3-16x80x1l4"].hourly
    assert report.instances == 2 and report.profile == "gx3-16x80x1l4" and report.gpus == 2
    assert report.per_hour == pytest.approx(2 * hourly) and report.for_hard_timeout == pytest.approx(8 * hourly)

    assert schematics.calls("POST", "/plan") and not schematics.calls("PUT", "/apply")
    ws = schematics.workspaces[schematics.workspace_id]
    assert ws.resources == [] and ws.status != "ACTIVE"
    assert API_KEY not in report.plan.log
    out = format_plan(report)
    assert "ibm_is_instance.worker[1]  create  gx3-16x80x1l4" in out and "GPUs in all: 2" in out
    assert f"{2 * hourly:,.2f} USD per hour" in out and "estimate" in out and "nothing was created" in out


def test_a_failed_plan_job_says_why(ibm_config, schematics, tmp_path):
    from ephemera.errors import EngineError

    schematics.plan_script = ["INPROGRESS", "FAILED"]
    schematics.plan_log = (
        "Initializing provider plugins...\nError: Invalid provider configuration\n\nregion 'us-nowhere' is not known\n"
    )
    ctx = Context({**ibm_config, "home": str(tmp_path / "home"), "workspace": {"name": "default", "stack": "ibm-vpc-gpu"}})
    ctx.engine._sleep = lambda s: None
    with pytest.raises(EngineError) as info:
        plan_workspace(ctx)
    assert "plan" in info.value.message and "failed" in info.value.message and info.value.log_tail
    assert (
        "Error: Invalid provider configuration\n  region 'us-nowhere' is not known" in info.value.message
    )  # Terraform's cause (F9)
