"""End to end with engine.backend=schematics: actions.apply -> actions.status (activity
COMPLETED, outputs, RUNNING) -> actions.destroy from a Code Engine COS event ->
actions.status -> DESTROYED, through the real SDK against the fake IAM and Schematics,
with the ledger in localhost storage."""

from __future__ import annotations

import json

import pytest

from ephemera import layout
from ephemera.model import marker as markers
from ephemera.model.ledger import Ledger
from ephemera.storage import get_storage
from tests.ibm.conftest import API_KEY, SECRETS

actions_apply = pytest.importorskip("ephemera.actions.apply")
actions_status = pytest.importorskip("ephemera.actions.status")
actions_destroy = pytest.importorskip("ephemera.actions.destroy")

BUCKET = "ephemera-state"


@pytest.fixture
def flow_config(ibm_config, tmp_path) -> dict:
    cfg = {
        **ibm_config,
        "storage": {"backend": "localhost", "bucket": BUCKET},
        "localhost": {"root": str(tmp_path / "buckets")},
        "home": str(tmp_path / "home"),
        "workspace": {"name": "gpu", "stack": "ibm-vpc-gpu", "variables": {"worker_count": 1}},
    }
    get_storage(cfg).create_bucket(BUCKET)
    return cfg


def _status(cfg: dict, run_id: str) -> dict:
    result = actions_status.main({"config": cfg, "run_id": run_id})
    assert "error" not in result, result
    return result["run"]


def test_apply_status_destroy_through_schematics(flow_config, schematics, iam):
    cfg = flow_config
    applied = actions_apply.main({"config": cfg, "ephemera_kind": "alarm", "ephemera_trigger": "nightly"})
    assert "error" not in applied, applied
    run_id = applied["run_id"]
    assert applied["state"] == "APPLYING"  # Schematics is async: apply returns once the job started

    # the apply job: variables written, then the apply with a refresh token
    ws = schematics.workspace
    store = {v["name"]: v for v in schematics.calls("PUT", "/values")[0].body["variablestore"]}
    assert store["run_id"]["value"] == run_id and store["state_bucket"]["value"] == BUCKET
    assert store["job_key"]["value"] == layout.job_key(run_id)
    assert schematics.calls("PUT", "/apply")[0].headers["refresh_token"] in iam.refresh_tokens

    states = [_status(cfg, run_id)["state"] for _ in range(2)]
    assert states == ["APPLYING", "RUNNING"]
    run = Ledger(get_storage(cfg), BUCKET).get(run_id)
    assert run.outputs["vpc_id"] == "r006-vpc-0001" and "debug_secret" not in run.outputs
    assert "0717_inst-0001" in run.resources

    # the workload ends: its marker is written, and the COS subscription delivers the write
    storage = get_storage(cfg)
    key = markers.key(layout.output_prefix("outputs", run_id), success=True)
    storage.put(BUCKET, key, json.dumps({"status": "succeeded", "run_id": run_id}).encode())
    event = {"bucket": BUCKET, "endpoint": "", "key": key, "operation": "Object:Write",
             "notification": {"bucket_name": BUCKET, "object_name": key, "event_type": "Object:Write", "object_length": "40"}}
    destroyed = actions_destroy.main({**event, "config": cfg})
    assert "error" not in destroyed, destroyed
    assert destroyed["run_id"] == run_id and destroyed["state"] == "DESTROYING"
    assert schematics.calls("PUT", "/destroy")[0].headers["refresh_token"] in iam.refresh_tokens

    states = [_status(cfg, run_id)["state"] for _ in range(2)]
    assert states == ["DESTROYING", "DESTROYED"]
    run = Ledger(storage, BUCKET).get(run_id)
    assert [t.state for t in run.transitions] == ["REQUESTED", "APPLYING", "RUNNING", "SUCCEEDED", "DESTROYING", "DESTROYED"]
    assert ws.resources == []

    record_text = json.dumps(run.to_dict())
    for secret in SECRETS:
        assert secret not in record_text and secret not in json.dumps([applied, destroyed])
    assert API_KEY not in record_text


def test_failed_apply_records_the_log_tail(flow_config, schematics):
    cfg = flow_config
    schematics.apply_script = ["FAILED"]
    applied = actions_apply.main({"config": cfg, "ephemera_kind": "alarm", "ephemera_trigger": "nightly"})
    run_id = applied["run_id"]
    run = _status(cfg, run_id)
    assert run["state"] == "APPLY_FAILED"
    assert "Insufficient capacity for profile gx3-16x80x1l4" in run["error"]["log_tail"]
