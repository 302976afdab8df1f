"""The Schematics engine, driven through the real ibm-schematics SDK over HTTP against
the fake IAM and fake Schematics servers."""

from __future__ import annotations

import logging

import pytest

from ephemera.assembly import load_config
from ephemera.assembly import get_engine
from ephemera.engines.base import OrphanSweeper
from ephemera.engines.schematics.config import SchematicsSettings
from ephemera.errors import ConfigError, EngineError, WorkspaceBusyError
from tests.ibm.conftest import API_KEY, HMAC_ID, HMAC_SECRET, SECRETS

RUN_VARS = {
    "run_id": "nightly-20261121T0200Z",
    "workspace": "gpu",
    "worker_count": 2,
    "job_key": "ephemera/jobs/nightly-20261121T0200Z.json",
    "state_bucket": "ephemera-state",
    "hard_deadline": "2026-11-21T06:00:00+00:00",
    "hard_timeout_seconds": 14400,
}
SECURE = {"cos_hmac_access_key_id": HMAC_ID, "cos_hmac_secret_access_key": HMAC_SECRET}
WS = "default"  # the config's workspace.name: the one workspace a Schematics engine serves
RUN_ID = RUN_VARS["run_id"]


def _engine(config: dict, sleeps: list | None = None):
    engine = get_engine(config)
    engine._sleep = sleeps.append if sleeps is not None else (lambda s: None)
    return engine


def _poll(engine, activity, limit: int = 10):
    for _ in range(limit):
        activity = engine.status(activity)
        if activity.done:
            return activity
    raise AssertionError("activity never finished")


def test_apply_completes_then_outputs_and_resources(ibm_config, schematics, iam):
    engine = _engine(ibm_config)
    activity = engine.apply(WS, RUN_ID, RUN_VARS, SECURE)
    assert activity.kind == "apply" and activity.state == "RUNNING" and activity.id

    first = engine.status(activity)
    assert first.state == "RUNNING"  # the fake reports INPROGRESS first
    done = _poll(engine, first)
    assert done.state == "COMPLETED" and done.finished_at

    outputs = engine.outputs(WS)
    assert outputs == {"vpc_id": "r006-vpc-0001", "instance_ids": ["0717_inst-0001"], "private_ips": ["10.240.0.4"]}
    assert "debug_secret" not in outputs  # sensitive outputs are left out
    assert engine.resources(WS) == ["r006-vpc-0001", "0717_inst-0001"]


def test_apply_sends_tf_vars_secure_values_and_refresh_token(ibm_config, schematics, iam):
    engine = _engine(ibm_config)
    activity = engine.apply(WS, RUN_ID, RUN_VARS, SECURE)
    ws = schematics.workspace

    puts = schematics.calls("PUT")
    assert [p.path for p in puts] == [
        f"/v1/workspaces/{ws.id}/template_data/{ws.template_id}/values",
        f"/v1/workspaces/{ws.id}/apply",
    ]
    store = {v["name"]: v for v in puts[0].body["variablestore"]}
    for name, value in RUN_VARS.items():
        assert store[name]["value"] == (str(value)) and store[name]["secure"] is False
    assert store["worker_count"]["type"] == "number" and store["run_id"]["type"] == "string"
    assert store["cos_hmac_access_key_id"] == {
        "name": "cos_hmac_access_key_id",
        "value": HMAC_ID,
        "type": "string",
        "secure": True,
    }
    assert store["cos_hmac_secret_access_key"]["secure"] is True
    assert store["region"]["value"] == "us-south"  # the workspace's own variable is kept

    apply_req = puts[1]
    assert apply_req.headers["refresh_token"] in iam.refresh_tokens  # a refresh token IAM issued
    assert apply_req.headers["authorization"].removeprefix("Bearer ") in iam.tokens
    token_requests = [r for r in iam.requests if r.path == "/identity/token"]
    assert token_requests and all(r.basic_auth == ("bx", "bx") for r in token_requests)
    assert token_requests[0].form["apikey"] == API_KEY
    assert activity.id in schematics.workspace.activities


def test_destroy_completes_and_leaves_nothing(ibm_config, schematics):
    engine = _engine(ibm_config)
    _poll(engine, engine.apply(WS, RUN_ID, RUN_VARS, SECURE))
    destroy = engine.destroy(WS)
    assert destroy.kind == "destroy" and destroy.state == "RUNNING"
    destroy_req = schematics.calls("PUT", "/destroy")[0]
    assert destroy_req.headers["refresh_token"]
    assert _poll(engine, destroy).state == "COMPLETED"
    assert engine.resources(WS) == []
    assert engine.outputs(WS) == {}


def test_destroy_of_an_empty_workspace_is_quiet(ibm_config, schematics):
    engine = _engine(ibm_config)
    activity = engine.destroy(WS)
    assert activity.state == "COMPLETED" and "nothing to destroy" in activity.log_tail
    assert schematics.calls("PUT") == []  # no destroy job was started
    assert engine.status(activity).state == "COMPLETED"


def test_locked_workspace_is_busy_not_failed(ibm_config, schematics):
    engine = _engine(ibm_config)
    schematics.lock()
    with pytest.raises(WorkspaceBusyError) as info:
        engine.apply(WS, RUN_ID, RUN_VARS, SECURE)
    assert info.value.retryable and "locked" in info.value.message
    assert schematics.calls("PUT") == []
    with pytest.raises(WorkspaceBusyError):
        engine.destroy(WS)


@pytest.mark.parametrize("status", [409, 423])
def test_conflict_on_apply_is_busy(ibm_config, schematics, status):
    engine = _engine(ibm_config)
    schematics.fail_next("PUT", "/apply", status, "Workspace is temporarily locked")
    with pytest.raises(WorkspaceBusyError) as info:
        engine.apply(WS, RUN_ID, RUN_VARS, SECURE)
    assert f"HTTP {status}" in info.value.message


def test_failed_activity_has_log_tail_without_secrets(ibm_config, schematics):
    engine = _engine(ibm_config)
    schematics.apply_script = ["INPROGRESS", "FAILED"]
    schematics.failure_log = f"Error: capacity exhausted for gx3-16x80x1l4 (request had key {HMAC_SECRET})"
    activity = _poll(engine, engine.apply(WS, RUN_ID, RUN_VARS, SECURE))
    assert activity.state == "FAILED"
    assert "capacity exhausted for gx3-16x80x1l4" in activity.log_tail
    assert "Terraform APPLY error" in activity.log_tail
    assert len(activity.log_tail.splitlines()) <= engine.settings.log_tail_lines
    assert HMAC_SECRET not in activity.log_tail and "********" in activity.log_tail
    log_get = schematics.calls("GET", f"/log_store/actions/{activity.id}")
    assert log_get and log_get[0].headers["authorization"].startswith("Bearer ")


def test_transient_errors_are_retried_with_backoff(ibm_config, schematics):
    sleeps: list = []
    engine = _engine(ibm_config, sleeps)
    schematics.fail_next("PUT", "/apply", 503, "Service Unavailable")
    schematics.fail_next("PUT", "/apply", 429, "Too Many Requests")
    activity = engine.apply(WS, RUN_ID, RUN_VARS, SECURE)
    assert activity.state == "RUNNING"
    assert len(schematics.calls("PUT", "/apply")) == 3
    assert sleeps == [2.0, 4.0]


def test_other_errors_are_not_retried(ibm_config, schematics):
    sleeps: list = []
    engine = _engine(ibm_config, sleeps)
    schematics.fail_next("PUT", "/apply", 500, "Internal error")
    with pytest.raises(EngineError) as info:
        engine.apply(WS, RUN_ID, RUN_VARS, SECURE)
    assert not info.value.retryable and "HTTP 500" in info.value.message and "start apply" in info.value.message
    assert sleeps == [] and len(schematics.calls("PUT", "/apply")) == 1


def test_unknown_workspace_names_the_config_key(ibm_config, schematics):
    engine = _engine({**ibm_config, "schematics": {**ibm_config["schematics"], "workspace_id": "nope"}})
    with pytest.raises(EngineError) as info:
        engine.apply(WS, RUN_ID, RUN_VARS, SECURE)
    assert "schematics.workspace_id" in info.value.message and "HTTP 404" in info.value.message


def test_unreachable_service_is_retryable_after_attempts(ibm_config, schematics):
    sleeps: list = []
    schematics.stop()
    engine = _engine(ibm_config, sleeps)
    with pytest.raises(EngineError) as info:
        engine.resources(WS)
    assert info.value.retryable and "cannot reach" in info.value.message
    assert sleeps == [2.0, 4.0, 8.0, 16.0]


def test_rejected_api_key_is_named_without_its_value(ibm_config, iam):
    iam.valid_api_keys.clear()
    engine = _engine(ibm_config)
    with pytest.raises(EngineError) as info:
        engine.apply(WS, RUN_ID, RUN_VARS, SECURE)
    assert "ibm.iam_api_key" in info.value.message
    assert API_KEY not in str(info.value)


def test_no_secret_in_any_log_or_result(ibm_config, schematics, caplog, restore_http_debug):
    caplog.set_level(logging.DEBUG)  # before the engine exists: the SDK then logs HTTP bodies too
    engine = _engine(ibm_config)
    schematics.apply_script = ["FAILED"]
    activity = _poll(engine, engine.apply(WS, RUN_ID, RUN_VARS, SECURE))
    destroy = engine.destroy(WS)
    schematics.lock()
    try:
        engine.apply(WS, RUN_ID, RUN_VARS, SECURE)
    except WorkspaceBusyError as exc:
        busy = str(exc)
    everything = caplog.text + repr(activity) + repr(destroy) + busy + repr(engine.settings) + repr(engine.outputs(WS))
    assert "PUT" in caplog.text or "Sending" in caplog.text  # the SDK did log at DEBUG
    for secret in SECRETS + tuple(iam_token for iam_token in engine._secrets if iam_token not in SECRETS):
        assert secret not in everything


def test_service_url_is_explicit():
    base = {"engine": {"backend": "schematics"}, "ibm": {"iam_api_key": API_KEY}, "schematics": {"workspace_id": "ws-1"}}
    assert SchematicsSettings.from_config(load_config(base)).service_url == "https://us-south.schematics.cloud.ibm.com"
    eu = {**base, "schematics": {"workspace_id": "ws-1", "region": "eu-de"}}
    assert SchematicsSettings.from_config(load_config(eu)).service_url == "https://eu-de.schematics.cloud.ibm.com"
    engine = get_engine(base)
    assert "schematics-dev" not in engine._client().service_url
    with pytest.raises(ConfigError) as info:
        SchematicsSettings.from_config(load_config({**base, "schematics": {"workspace_id": "w", "region": "mars-1"}}))
    assert info.value.field == "schematics.region"
    with pytest.raises(ConfigError) as info:
        SchematicsSettings.from_config(load_config({**base, "schematics": {"workspace_id": "w", "url": "ftp://x"}}))
    assert info.value.field == "schematics.url"
    assert API_KEY not in repr(engine.settings)


def test_it_is_an_orphan_sweeper_of_its_one_workspace(ibm_config, schematics):
    """The owner is the ``run_id`` the engine wrote to the variable store before the
    apply (Schematics returns non-secure values in GET /v1/workspaces/{id}), else the
    ``run_id`` output of the stack."""
    engine = _engine(ibm_config)
    assert isinstance(engine, OrphanSweeper) and engine.workspaces() == [WS]
    assert engine.owner(WS) is None  # never applied: only the workspace's own variables
    _poll(engine, engine.apply(WS, "another-run", {**RUN_VARS, "run_id": "stale"}, SECURE))
    assert engine.owner(WS) == "another-run"  # the run applied for, whatever the variables said
    schematics.workspace.variablestore = [v for v in schematics.workspace.variablestore if v["name"] != "run_id"]
    schematics.workspace.outputs["run_id"] = {"value": "from-outputs", "type": "string", "sensitive": False}
    assert engine.owner(WS) == "from-outputs"
    for call in (lambda: engine.resources("other"), lambda: engine.destroy("other"), lambda: engine.owner("other")):
        with pytest.raises(EngineError) as info:
            call()
        assert "'other'" in info.value.message and f"serves workspace '{WS}'" in info.value.message


def test_complex_variables_carry_their_type_and_operator_variables_are_kept(ibm_config, schematics):
    """WorkspaceVariableRequest: ``type`` -- "complex data types such as list(type),
    map(type)" -- and ``value`` "in HCL format for the complex variables, as you provide in
    a .tfvars file"; ``secure`` values are "not returned in your API response", so the
    store (replaced whole by PUT .../values) is sent back with the operator's secure
    value from schematics.secure_variables."""
    ws = schematics.workspace
    ws.variablestore += [
        {"name": "zone", "value": "us-south-2", "type": "string", "secure": False},
        {"name": "operator_token", "value": "op-token-1234567", "type": "string", "secure": True},
        {"name": "cos_api_key", "value": "old-ephemera-key", "type": "string", "secure": True},
    ]
    cfg = {**ibm_config, "schematics": {**ibm_config["schematics"], "secure_variables": {"operator_token": "op-token-1234567"}}}
    engine = _engine(cfg)
    engine.apply(
        WS, RUN_ID, {**RUN_VARS, "extra_tags": ["team:ml", "cost:gpu"], "vm_boot": ["YQ==", "Yg=="], "debug_access": False}, {}
    )
    store = {v["name"]: v for v in schematics.calls("PUT", "/values")[0].body["variablestore"]}
    assert store["extra_tags"] == {
        "name": "extra_tags",
        "value": '["team:ml", "cost:gpu"]',
        "type": "list(string)",
        "secure": False,
    }
    assert store["vm_boot"]["type"] == "list(string)" and store["debug_access"]["type"] == "bool"
    assert store["zone"] == {"name": "zone", "value": "us-south-2", "type": "string", "secure": False}
    assert store["operator_token"] == {"name": "operator_token", "value": "op-token-1234567", "type": "string", "secure": True}
    assert "cos_api_key" not in store  # a secret older Ephemera versions wrote is dropped


def test_an_operator_secret_that_would_be_lost_stops_the_apply(ibm_config, schematics):
    schematics.workspace.variablestore.append({"name": "operator_token", "value": "op-token-1234567", "secure": True})
    engine = _engine(ibm_config)
    with pytest.raises(EngineError, match="operator_token.*schematics.secure_variables"):
        engine.apply(WS, RUN_ID, RUN_VARS, {})
    assert schematics.calls("PUT") == []  # nothing was changed


def test_the_whole_job_log_is_given_for_the_run_logs_without_secrets(ibm_config, schematics):
    """Schematics keeps an activity's Terraform log at the ``log_url`` its
    ``GET /v1/workspaces/{id}/actions/{action_id}/logs`` names; ``ephemera logs`` shows all of it."""
    from ephemera.engines.base import ActivityLogs

    engine = _engine(ibm_config)
    assert isinstance(engine, ActivityLogs)
    schematics.apply_script = ["INPROGRESS", "FAILED"]
    schematics.failure_log = f"Error: capacity exhausted (request had key {HMAC_SECRET})"
    activity = _poll(engine, engine.apply(WS, RUN_ID, RUN_VARS, SECURE))
    text = engine.activity_log(activity)
    lines = text.splitlines()
    assert len(lines) > engine.settings.log_tail_lines  # all of it, not the tail
    assert "line 0: terraform output" in lines and "Terraform APPLY error: exit status 1" in lines
    assert HMAC_SECRET not in text and "Error: capacity exhausted (request had key ********)" in lines
