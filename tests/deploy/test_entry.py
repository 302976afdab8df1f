"""The deployed entry points, in-process: the deployment fixes the action, a request
that is no event creates nothing, and Code Engine results carry an HTTP status.

Facts: OpenWhisk's launcher sets ``__OW_ACTION_NAME`` from the invoker's message (the
caller cannot choose it); OpenWhisk >= 2.0 adds ``__ow_headers`` (the fire request's
HTTP headers) to trigger events; a Code Engine function result should "always set
``body`` and ``statusCode``".
"""

from __future__ import annotations

import json

import pytest

from ephemera.actions.entry import code_engine_main, openwhisk_main, status_code
from ephemera.context import Context


@pytest.fixture
def config(local_config) -> dict:
    cfg = local_config(engine={"backend": "terraform"})
    Context(cfg).storage.create_bucket(cfg["storage"]["bucket"])
    return cfg


def test_openwhisk_runs_the_action_the_platform_names(config, monkeypatch):
    monkeypatch.setenv("__OW_ACTION_NAME", "/guest/ephemera/status")
    assert openwhisk_main({"config": config}) == {"ok": True, "runs": []}
    monkeypatch.setenv("__OW_ACTION_NAME", "/guest/ephemera/nope")
    unknown = openwhisk_main({"config": config})
    assert unknown["error"]["code"] == "CONFIG_INVALID" and "apply, destroy, reap, status" in unknown["error"]["message"]


def test_a_request_cannot_choose_the_action_or_start_a_run_without_an_event(config, monkeypatch):
    monkeypatch.setenv("__OW_ACTION_NAME", "/guest/ephemera/apply")
    override = openwhisk_main({"config": config, "ephemera_kind": "manual", "ephemera_action": "status"})
    assert override["error"]["code"] == "PARAM_INVALID" and "'apply'" in override["error"]["message"]
    bare = openwhisk_main({"config": config})
    assert bare["error"]["code"] == "EVENT_INVALID" and "ephemera_kind: manual" in bare["error"]["message"]
    assert list(Context(config).ledger.list()) == []


def test_openwhisk_fire_headers_never_reach_the_run_record(config, monkeypatch):
    monkeypatch.setenv("__OW_ACTION_NAME", "/guest/ephemera/apply")
    monkeypatch.setattr("ephemera.actions.apply.apply_run", lambda ctx, run: run)  # the request alone is under test
    result = openwhisk_main({"config": config, "ephemera_kind": "alarm", "ephemera_trigger": "nightly",
                             "__ow_headers": {"authorization": "Basic c2VjcmV0"}})
    assert result["ok"], result
    record = Context(config).ledger.get(result["run_id"]).to_dict()
    assert "authorization" not in json.dumps(record) and record["event"]["trigger"] == "nightly"


def test_code_engine_result_shape_and_refusals(config, monkeypatch):
    monkeypatch.setenv("EPHEMERA_ACTION", "status")
    monkeypatch.setenv("EPHEMERA_CONFIG_JSON", json.dumps(config))
    ok = code_engine_main({"__ce_method": "GET", "__ce_headers": {}, "__ce_path": "/", "__ce_query": ""})
    assert ok == {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": {"ok": True, "runs": []}}
    forged = code_engine_main({"__ce_method": "POST", "__ce_headers": {}, "config": {"storage": {"backend": "localhost"}}})
    assert forged["statusCode"] == 400 and "may not carry a config" in forged["body"]["error"]["message"]
    monkeypatch.delenv("EPHEMERA_CONFIG_JSON")
    unbound = code_engine_main({"__ce_method": "GET", "__ce_headers": {}})
    assert unbound["statusCode"] == 500 and unbound["body"]["error"]["code"] == "CONFIG_INVALID"


@pytest.mark.parametrize("result, status", [
    ({"ok": True}, 200),
    ({"ok": True, "ignored": True, "reason_code": "NOT_A_MARKER"}, 200),
    ({"error": {"code": "EVENT_INVALID", "retryable": False}}, 400),
    ({"error": {"code": "RUN_NOT_FOUND", "retryable": False}}, 404),
    ({"error": {"code": "WORKSPACE_BUSY", "retryable": True}}, 503),
    ({"error": {"code": "APPLY_FAILED", "retryable": False}, "run_id": "r", "state": "DESTROYED"}, 500),
])
def test_status_codes(result, status):
    assert status_code(result) == status
