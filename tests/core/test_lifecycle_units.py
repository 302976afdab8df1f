"""Lifecycle details: the Terraform variables of a run, workspace parameters, and a
workload interrupted mid-run still ending its run with a marker."""

from __future__ import annotations

import json

import pytest

from ephemera import layout
from ephemera.context import Context
from ephemera.errors import ParamError
from ephemera.model.jobs import JobSpec
from ephemera.vm.workload import run_job
from ephemera.lifecycle import request_run, stack_variables
from ephemera.triggers.events import parse_event

IAM_KEY = "iam-key-for-the-vms-0123456789"


def test_iam_cos_runs_give_the_vms_everything_they_need(local_config):
    raw = local_config(storage={"backend": "ibm_cos", "bucket": "ephemera-test"},
                       ibm_cos={"region": "eu-de", "api_key": IAM_KEY, "service_instance_id": "crn:v1:cos-instance"},
                       ibm={"iam_api_key": IAM_KEY})
    ctx = Context(raw, storage=object())  # no storage call is made
    from ephemera.model.runs import RunRecord

    job = JobSpec(run_id="ws-1", workspace="ws", entry="ephemera.workloads.smoke:main", params={}, state_bucket="ephemera-test",
                  output_bucket="ephemera-test", output_prefix="outputs/ws-1/", worker_count=2)
    run = RunRecord(run_id="ws-1", workspace="ws", engine="terraform", hard_deadline="2099-01-01T00:00:00+00:00", job=job)
    plain, secure = stack_variables(ctx, run)
    assert plain["cos_region"] == "eu-de" and plain["cos_service_instance_id"] == "crn:v1:cos-instance"
    assert secure == {"cos_api_key": IAM_KEY, "ibmcloud_api_key": IAM_KEY}
    assert IAM_KEY not in json.dumps(plain)


def test_schematics_configs_take_no_other_workspace(local_config, monkeypatch):
    raw = local_config(engine={"backend": "schematics"}, schematics={"workspace_id": "us-south.workspace.x.1"},
                       ibm={"iam_api_key": IAM_KEY})
    ctx = Context(raw)
    with pytest.raises(ParamError, match="'workspace'"):
        request_run(ctx, parse_event({"workspace": "another"}))
    assert list(ctx.ledger.list()) == []


def test_an_interrupted_workload_still_writes_its_failure_marker(local_config, monkeypatch):
    ctx = Context(local_config())
    job = JobSpec(run_id="ws-int", workspace="ws", entry="ephemera.workloads.smoke:main", params={}, state_bucket="ephemera-test",
                  output_bucket="ephemera-test", output_prefix=layout.output_prefix("outputs", "ws-int"))

    def interrupted(_ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr("ephemera.workloads.smoke.main", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_job(job, ctx.storage)
    marker = json.loads(ctx.storage.get("ephemera-test", "outputs/ws-int/_FAILURE.json"))
    assert marker["status"] == "failed" and marker["error"]["type"] == "KeyboardInterrupt"
