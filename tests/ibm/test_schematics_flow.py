"""End to end with engine.backend=schematics: actions.apply -> actions.status (activity
COMPLETED, outputs, RUNNING) -> actions.destroy from a Code Engine COS event ->
actions.status -> DESTROYED, through the real SDK against the fake IAM and Schematics,
with the ledger in IBM COS (a local S3 server) and the VMs' trusted profile, as the stack's
spec requires (its VMs reach COS only); and the reaper's orphan sweep over the same."""

from __future__ import annotations

import json

import pytest

from ephemera import layout
from ephemera.context import Context
from ephemera.lifecycle.reaper import reap
from ephemera.model import marker as markers
from ephemera.model.ledger import Ledger
from ephemera.model.runs import RunState as S
from ephemera.assembly import get_storage
from tests.ibm.conftest import API_KEY, SECRETS

actions_apply = pytest.importorskip("ephemera.actions.apply")
actions_status = pytest.importorskip("ephemera.actions.status")
actions_destroy = pytest.importorskip("ephemera.actions.destroy")


@pytest.fixture
def flow_config(cos_config) -> dict:
    return {**cos_config, "workspace": {"name": "gpu", "stack": "ibm-vpc-gpu", "variables": {"worker_count": 1}}}


def _status(cfg: dict, run_id: str) -> dict:
    result = actions_status.main({"config": cfg, "run_id": run_id})
    assert "error" not in result, result
    return result["run"]


def test_apply_status_destroy_through_schematics(flow_config, schematics, iam):
    cfg = flow_config
    bucket = cfg["storage"]["bucket"]
    applied = actions_apply.main({"config": cfg, "ephemera_kind": "alarm", "ephemera_trigger": "nightly"})
    assert "error" not in applied, applied
    run_id = applied["run_id"]
    assert applied["state"] == "APPLYING"  # Schematics is async: apply returns once the job started

    # the apply job: variables written, then the apply with a refresh token
    ws = schematics.workspace
    store = {v["name"]: v for v in schematics.calls("PUT", "/values")[0].body["variablestore"]}
    assert store["run_id"]["value"] == run_id and store["state_bucket"]["value"] == bucket
    assert store["job_key"]["value"] == layout.job_key(run_id)
    assert schematics.calls("PUT", "/apply")[0].headers["refresh_token"] in iam.refresh_tokens

    states = [_status(cfg, run_id)["state"] for _ in range(2)]
    assert states == ["APPLYING", "RUNNING"]
    run = Ledger(get_storage(cfg), bucket).get(run_id)
    assert run.outputs["vpc_id"] == "r006-vpc-0001" and "debug_secret" not in run.outputs
    assert "0717_inst-0001" in run.resources

    # the workload ends: its marker is written, and the COS subscription delivers the write
    storage = get_storage(cfg)
    key = markers.key(layout.output_prefix("outputs", run_id), success=True)
    storage.put(bucket, key, json.dumps({"status": "succeeded", "run_id": run_id}).encode())
    event = {
        "bucket": bucket,
        "endpoint": "",
        "key": key,
        "operation": "Object:Write",
        "notification": {"bucket_name": bucket, "object_name": key, "event_type": "Object:Write", "object_length": "40"},
    }
    destroyed = actions_destroy.main({**event, "config": cfg})
    assert "error" not in destroyed, destroyed
    assert destroyed["run_id"] == run_id and destroyed["state"] == "DESTROYING"
    assert schematics.calls("PUT", "/destroy")[0].headers["refresh_token"] in iam.refresh_tokens

    states = [_status(cfg, run_id)["state"] for _ in range(2)]
    assert states == ["DESTROYING", "DESTROYED"]
    run = Ledger(storage, bucket).get(run_id)
    assert [t.state for t in run.transitions] == ["REQUESTED", "APPLYING", "RUNNING", "SUCCEEDED", "DESTROYING", "DESTROYED"]
    assert ws.resources == []

    record_text = json.dumps(run.to_dict())
    for secret in SECRETS:
        assert secret not in record_text and secret not in json.dumps([applied, destroyed])
    assert API_KEY not in record_text


def test_failed_apply_records_the_log_tail(flow_config, schematics):
    cfg = flow_config
    bucket = cfg["storage"]["bucket"]
    schematics.apply_script = ["FAILED"]
    applied = actions_apply.main({"config": cfg, "ephemera_kind": "alarm", "ephemera_trigger": "nightly"})
    run_id = applied["run_id"]
    run = _status(cfg, run_id)
    assert run["state"] == "APPLY_FAILED"
    assert "Insufficient capacity for profile gx3-16x80x1l4" in run["error"]["log_tail"]
    # the whole Schematics job log is kept with the run's logs (`ephemera logs RUN --source engine`)
    from ephemera.model.logs import read_logs

    lines, _ = read_logs(get_storage(cfg), bucket, run_id)
    engine = [line.text for line in lines if line.source == "engine"]
    assert "line 0: terraform output" in engine and "Terraform APPLY error: exit status 1" in engine
    assert not any(secret in text for text in engine for secret in SECRETS)


def _apply_and_destroy(cfg: dict) -> str:
    """A whole run through the actions: applied, its marker handled, DESTROYED."""
    bucket = cfg["storage"]["bucket"]
    run_id = actions_apply.main({"config": cfg, "ephemera_kind": "alarm", "ephemera_trigger": "nightly"})["run_id"]
    assert [_status(cfg, run_id)["state"] for _ in range(2)] == ["APPLYING", "RUNNING"]
    key = markers.key(layout.output_prefix("outputs", run_id), success=True)
    storage = get_storage(cfg)
    storage.put(bucket, key, json.dumps({"status": "succeeded", "run_id": run_id}).encode())
    assert (
        actions_destroy.main({"config": cfg, "ephemera_kind": "object_write", "bucket": bucket, "key": key})["state"]
        == "DESTROYING"
    )
    assert [_status(cfg, run_id)["state"] for _ in range(2)] == ["DESTROYING", "DESTROYED"]
    return run_id


def test_reaper_sweeps_what_a_destroyed_run_left_in_the_workspace(flow_config, schematics, iam):
    """Schematics keeps the run's variables in the workspace's variable store (non-secure
    values are returned by GET /v1/workspaces/{id}); the engine reads the owner's run_id
    there, and get_workspace_resources lists what the workspace still holds."""
    cfg = flow_config
    run_id = _apply_and_destroy(cfg)
    # the workspace holds resources again (e.g. a job nobody recorded re-created them)
    ws = schematics.workspace
    ws.status, ws.resources = "ACTIVE", list(schematics.resources_on_apply)
    ctx = Context(cfg)
    destroys = len(schematics.calls("PUT", "/destroy"))

    first = reap(ctx)
    assert [(a.before, a.after) for a in first] == [("orphan", "DESTROYING")], first
    assert f"run {run_id} is DESTROYED" in first[0].why and "0717_inst-0001" in first[0].why
    assert len(schematics.calls("PUT", "/destroy")) == destroys + 1  # one destroy job, started at once
    sweep_id = first[0].run_id
    sweep = ctx.ledger.get(sweep_id)
    assert sweep.state == S.DESTROYING and sweep.resources == ["0717_inst-0001", "r006-vpc-0001"]
    # while the sweep runs its record holds the workspace: no new run may apply there
    assert actions_apply.main({"config": cfg, "ephemera_kind": "manual"})["reason_code"] == "WORKSPACE_BUSY"

    later = reap(ctx) + reap(ctx)  # the async destroy is polled like any run's: INPROGRESS, then COMPLETED
    assert [(a.run_id, a.after) for a in later] == [(sweep_id, "DESTROYED")], later
    assert ws.resources == [] and len(schematics.calls("PUT", "/destroy")) == destroys + 1
    assert ctx.ledger.get(run_id).state == S.DESTROYED  # the owner's own record is left as it was
    assert reap(ctx) == []  # nothing left to do
    record_text = json.dumps(ctx.ledger.get(sweep_id).to_dict())
    assert not any(secret in record_text for secret in SECRETS)


def test_reaper_records_resources_an_open_run_does_not_name(flow_config, schematics):
    cfg = flow_config
    run_id = actions_apply.main({"config": cfg, "ephemera_kind": "alarm", "ephemera_trigger": "nightly"})["run_id"]
    ctx = Context(cfg)
    assert ctx.ledger.get(run_id).resources == []
    # Schematics has created resources; the record has not heard of them yet
    schematics.workspace.resources = list(schematics.resources_on_apply)

    acted = reap(ctx)
    assert [(a.run_id, a.before, a.after) for a in acted] == [(run_id, "APPLYING", "APPLYING")], acted
    assert "did not name" in acted[0].why
    assert ctx.ledger.get(run_id).resources == ["0717_inst-0001", "r006-vpc-0001"]
    assert schematics.calls("PUT", "/destroy") == []  # an open run's resources are its rules' business
    again = reap(ctx)  # the reaper polls the apply meanwhile; the resources are not recorded twice
    assert not [a for a in again if "did not name" in a.why], again
