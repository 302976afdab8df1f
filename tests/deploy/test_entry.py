"""The deployed entry points, in-process: the deployment fixes the action, a request
that is no event creates nothing, a Code Engine request without the deployment's
invoke token gets 401 and touches nothing, an authenticated one chooses only what the
config allows, and Code Engine results carry an HTTP status.

Facts: OpenWhisk's launcher sets ``__OW_ACTION_NAME`` from the invoker's message (the
caller cannot choose it); OpenWhisk >= 2.0 adds ``__ow_headers`` (the fire request's
HTTP headers) to trigger events; a Code Engine function result should "always set
``body`` and ``statusCode``"; a function gets the request headers in ``__ce_headers``,
"key is in canonical format" (``authorization`` arrives as ``Authorization``), and the
top-level keys of a JSON body, or of the query string, as top-level ``args`` (so a
token there is reachable by anyone who can put one in a URL). Code Engine's docs say
private functions are reachable from the project's components and VPE callers and
"need to be secured".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ephemera.actions import entry
from ephemera.actions.entry import code_engine_main, openwhisk_main, status_code
from ephemera.context import Context
from ephemera.deploy.bound import DIGEST_PARAM, config_digest
from ephemera.deploy.invoke_token import new_token

TOKEN = new_token()


def _files(config: dict) -> list[Path]:
    return [p for p in Path(config["localhost"]["root"]).rglob("*") if p.is_file()]


def _bound(config: dict) -> dict:
    """What the OpenWhisk package binds: the config and its digest."""
    return {"config": config, DIGEST_PARAM: config_digest(config)}


@pytest.fixture
def function(config, monkeypatch):
    """A deployed apply function (token and config bound), and a record of what ran behind the gate."""
    monkeypatch.setenv("EPHEMERA_ACTION", "apply")
    monkeypatch.setenv("EPHEMERA_CONFIG_JSON", json.dumps(config))
    monkeypatch.setenv("EPHEMERA_INVOKE_TOKEN", TOKEN)
    seen = {"config_reads": 0, "engine_calls": 0}
    real_config = entry.code_engine_config

    def reading(environ):
        seen["config_reads"] += 1
        return real_config(environ)

    def engine(ctx, run):  # the engine's apply, recorded instead of run
        seen["engine_calls"] += 1
        return run

    monkeypatch.setattr(entry, "code_engine_config", reading)
    monkeypatch.setattr("ephemera.actions.apply.apply_run", engine)
    return seen


def _request(body: dict | None, headers: dict | None = None) -> dict:
    args = {
        "__ce_method": "POST",
        "__ce_headers": {"Content-Type": "application/json", **(headers or {})},
        "__ce_path": "/",
        "__ce_query": "",
    }
    return {**args, **(body or {})}


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_openwhisk_runs_the_action_the_platform_names(config, monkeypatch):
    monkeypatch.setenv("__OW_ACTION_NAME", "/guest/ephemera/status")
    assert openwhisk_main(_bound(config)) == {"ok": True, "runs": []}
    monkeypatch.setenv("__OW_ACTION_NAME", "/guest/ephemera/nope")
    unknown = openwhisk_main(_bound(config))
    assert unknown["error"]["code"] == "CONFIG_INVALID" and "apply, destroy, reap, status" in unknown["error"]["message"]


def test_a_request_cannot_choose_the_action_or_start_a_run_without_an_event(config, monkeypatch):
    monkeypatch.setenv("__OW_ACTION_NAME", "/guest/ephemera/apply")
    override = openwhisk_main({**_bound(config), "ephemera_kind": "manual", "ephemera_action": "status"})
    assert override["error"]["code"] == "PARAM_INVALID" and "'apply'" in override["error"]["message"]
    bare = openwhisk_main(_bound(config))
    assert bare["error"]["code"] == "EVENT_INVALID" and "ephemera_kind: manual" in bare["error"]["message"]
    chosen = openwhisk_main({**_bound(config), "ephemera_kind": "manual", "run_id": "ws-20261208t020000"})
    assert chosen["error"]["code"] == "PARAM_INVALID" and "'run_id'" in chosen["error"]["message"]
    assert list(Context(config).ledger.list()) == []


def test_openwhisk_refuses_a_config_the_invocation_carries(config, monkeypatch, tmp_path):
    """Finding 15: OpenWhisk ranks invocation params over bound ones (unless ``final``).
    An invocation that swaps in its own config (another state bucket, an engine of its
    choosing) or names a config file on the action's disk is refused before anything runs."""
    monkeypatch.setenv("__OW_ACTION_NAME", "/guest/ephemera/apply")
    forged = {**config, "storage": {"backend": "localhost", "bucket": "attacker"}, "localhost": {"root": str(tmp_path / "x")}}
    swapped = openwhisk_main({**_bound(config), "config": forged, "ephemera_kind": "manual"})
    assert swapped["error"]["code"] == "PARAM_INVALID" and "not the config this deployment bound" in swapped["error"]["message"]
    config_file = tmp_path / "evil.yaml"
    config_file.write_text(json.dumps(forged))
    named = openwhisk_main({**_bound(config), "config_file": str(config_file), "ephemera_kind": "manual"})
    assert named["error"]["code"] == "PARAM_INVALID" and "'config_file'" in named["error"]["message"]
    unbound = openwhisk_main({"config": forged, "ephemera_kind": "manual"})  # no digest bound: an old or hand-made deployment
    assert unbound["error"]["code"] == "CONFIG_INVALID" and "functions-create.sh" in unbound["error"]["message"]
    assert not (tmp_path / "x").exists() and list(Context(config).ledger.list()) == []


def test_openwhisk_fire_headers_never_reach_the_run_record(config, monkeypatch):
    monkeypatch.setenv("__OW_ACTION_NAME", "/guest/ephemera/apply")
    monkeypatch.setattr("ephemera.actions.apply.apply_run", lambda ctx, run: run)  # the request alone is under test
    result = openwhisk_main(
        {
            **_bound(config),
            "ephemera_kind": "alarm",
            "ephemera_trigger": "nightly",
            "__ow_headers": {"authorization": "Basic c2VjcmV0"},
        }
    )
    assert result["ok"], result
    record = Context(config).ledger.get(result["run_id"]).to_dict()
    assert "authorization" not in json.dumps(record) and record["event"]["trigger"] == "nightly"
    assert DIGEST_PARAM not in json.dumps(record)


@pytest.mark.parametrize(
    "case, body, headers",
    [
        ("no header", {"ephemera_kind": "manual"}, {}),
        ("wrong token", {"ephemera_kind": "manual"}, _bearer(new_token())),
        ("empty token", {"ephemera_kind": "manual"}, {"Authorization": "Bearer "}),
        ("empty header", {"ephemera_kind": "manual"}, {"Authorization": ""}),
        ("another deployment's token", {"ephemera_kind": "manual"}, _bearer(new_token())),
        ("token in the body", {"ephemera_kind": "manual", "Authorization": f"Bearer {TOKEN}", "token": TOKEN}, {}),
        ("token as a query parameter", {"ephemera_kind": "manual", "authorization": f"Bearer {TOKEN}"}, {}),
        ("another scheme", {"ephemera_kind": "manual"}, {"Authorization": f"Basic {TOKEN}"}),
        ("token prefix", {"ephemera_kind": "manual"}, _bearer(TOKEN[:-1])),
        ("non-ASCII token", {"ephemera_kind": "manual"}, _bearer("tökén" * 8)),
        ("two headers", {"ephemera_kind": "manual"}, {"Authorization": [f"Bearer {TOKEN}", "Bearer x"]}),
        ("the issue's request", {"ephemera_kind": "manual"}, {"X-Forwarded-For": "10.0.0.8"}),
    ],
)
def test_an_unauthenticated_request_gets_401_and_touches_nothing(function, config, case, body, headers):
    """Finding 1: ``{"ephemera_kind": "manual"}`` started a Schematics apply, 200. Now every
    request without the deployment's token, in the Authorization header, gets 401 with a
    body that says nothing about why; the config is not read, no engine is called and
    nothing is written to storage."""
    result = code_engine_main(_request(body, headers))
    assert result["statusCode"] == 401, (case, result)
    assert result["body"] == {"error": {"code": "UNAUTHORIZED", "message": "authentication required", "retryable": False}}
    assert result["headers"]["WWW-Authenticate"] == "Bearer"
    assert function == {"config_reads": 0, "engine_calls": 0}
    assert _files(config) == []


def test_status_without_the_token_lists_nothing(function, config, monkeypatch):
    """Finding 1: ``status`` returned every run record to anyone."""
    monkeypatch.setattr("ephemera.actions.apply.apply_run", lambda ctx, run: run)
    made = code_engine_main(_request({"ephemera_kind": "manual"}, _bearer(TOKEN)))
    assert made["statusCode"] == 200, made
    monkeypatch.setenv("EPHEMERA_ACTION", "status")
    anonymous = code_engine_main(_request(None))
    assert anonymous["statusCode"] == 401 and made["body"]["run_id"] not in json.dumps(anonymous)
    owner = code_engine_main(_request(None, _bearer(TOKEN)))
    assert owner["statusCode"] == 200 and [r["run_id"] for r in owner["body"]["runs"]] == [made["body"]["run_id"]]


def test_the_right_token_starts_a_run(function, config):
    result = code_engine_main(_request({"ephemera_kind": "manual", "params": {"folds": 4}}, {"authorization": f"bearer {TOKEN}"}))
    assert result["statusCode"] == 200 and result["body"]["ok"], result
    assert function["engine_calls"] == 1
    record = Context(config).ledger.get(result["body"]["run_id"])
    assert record.job.params["folds"] == 4
    assert TOKEN not in json.dumps(record.to_dict()) + json.dumps(result) + "".join(p.read_text() for p in _files(config))


def test_a_function_without_a_bound_token_refuses_everything(function, config, monkeypatch):
    """Fail closed: a function deployed without the ephemera-invoke secret acts on nothing,
    not even a request that presents some token, and says how to fix the deployment."""
    for unbound in ("", "short"):
        monkeypatch.setenv("EPHEMERA_INVOKE_TOKEN", unbound)
        result = code_engine_main(_request({"ephemera_kind": "manual"}, _bearer(unbound or "x")))
        assert result["statusCode"] == 500 and result["body"]["error"]["code"] == "CONFIG_INVALID"
        assert (
            "EPHEMERA_INVOKE_TOKEN" in result["body"]["error"]["message"]
            and "ephemera deploy code-engine" in result["body"]["error"]["message"]
        )
    monkeypatch.delenv("EPHEMERA_INVOKE_TOKEN")
    assert code_engine_main(_request({"ephemera_kind": "manual"}))["statusCode"] == 500
    assert function == {"config_reads": 0, "engine_calls": 0} and _files(config) == []


@pytest.mark.parametrize(
    "body, field",
    [
        ({"ephemera_kind": "manual", "run_id": "ws-20261208t020000"}, "run_id"),  # the next nightly alarm's id
        ({"ephemera_kind": "manual", "config": {"storage": {"backend": "localhost"}}}, "config"),
        ({"ephemera_kind": "manual", "config_file": "/etc/passwd"}, "config_file"),
        ({"ephemera_kind": "manual", "ephemera_action": "reap"}, "ephemera_action"),
        ({"ephemera_kind": "manual", "params": {"folds": 3, "entry": "evil:main"}}, "params.entry"),
        ({"ephemera_kind": "manual", "params": "folds=3"}, "params"),
        ({"ephemera_kind": "manual", "workspace": "prod"}, "workspace"),
        ({"ephemera_kind": "alarm"}, "ephemera_kind"),
        ({"ephemera_kind": "alarm", "ephemera_trigger": "nightly"}, "ephemera_trigger"),
        ({"ephemera_kind": "manual", "ephemera_time": "2026-12-08T02:00:00Z"}, "ephemera_time"),
        ({"ephemera_kind": "manual", "ephemera_not_before": "2000-01-01T00:00:00Z"}, "ephemera_not_before"),
    ],
)
def test_an_authenticated_request_chooses_only_what_the_config_allows(function, config, body, field):
    """A remote request never chooses the run id, the action, the config, or params beyond
    ``workload.remote_params``: 400 naming the key and the fix, and nothing runs."""
    result = code_engine_main(_request(body, _bearer(TOKEN)))
    assert result["statusCode"] == 400, result
    error = result["body"]["error"]
    assert error["code"] == "PARAM_INVALID" and f"parameter '{field}'" in error["message"] and ";" in error["message"], error
    assert function["engine_calls"] == 0 and list(Context(config).ledger.list()) == []


def test_what_a_remote_request_may_set(function, config, monkeypatch):
    ok = code_engine_main(_request({"ephemera_kind": "manual", "idempotency_key": "k1", "workspace": "ws"}, _bearer(TOKEN)))
    assert ok["statusCode"] == 200, ok
    monkeypatch.setenv("EPHEMERA_ACTION", "status")
    looked = code_engine_main(_request({"run_id": ok["body"]["run_id"]}, _bearer(TOKEN)))
    assert looked["statusCode"] == 200 and looked["body"]["run"]["run_id"] == ok["body"]["run_id"]
    monkeypatch.setenv("EPHEMERA_ACTION", "reap")
    assert code_engine_main(_request({"anything": 1}, _bearer(TOKEN)))["statusCode"] == 400


def test_code_engine_result_shape_and_refusals(config, monkeypatch):
    monkeypatch.setenv("EPHEMERA_ACTION", "status")
    monkeypatch.setenv("EPHEMERA_CONFIG_JSON", json.dumps(config))
    monkeypatch.setenv("EPHEMERA_INVOKE_TOKEN", TOKEN)
    ok = code_engine_main({"__ce_method": "GET", "__ce_headers": _bearer(TOKEN), "__ce_path": "/", "__ce_query": ""})
    assert ok == {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": {"ok": True, "runs": []}}
    forged = code_engine_main(
        {"__ce_method": "POST", "__ce_headers": _bearer(TOKEN), "config": {"storage": {"backend": "localhost"}}}
    )
    assert forged["statusCode"] == 400 and "may not carry a config" in forged["body"]["error"]["message"]
    monkeypatch.delenv("EPHEMERA_CONFIG_JSON")
    unbound = code_engine_main({"__ce_method": "GET", "__ce_headers": _bearer(TOKEN)})
    assert unbound["statusCode"] == 500 and unbound["body"]["error"]["code"] == "CONFIG_INVALID"
    assert code_engine_main(["not", "an", "object"])["statusCode"] == 401


@pytest.mark.parametrize(
    "result, status",
    [
        ({"ok": True}, 200),
        ({"ok": True, "ignored": True, "reason_code": "NOT_A_MARKER"}, 200),
        ({"error": {"code": "EVENT_INVALID", "retryable": False}}, 400),
        ({"error": {"code": "UNAUTHORIZED", "retryable": False}}, 401),
        ({"error": {"code": "RUN_NOT_FOUND", "retryable": False}}, 404),
        ({"error": {"code": "WORKSPACE_BUSY", "retryable": True}}, 503),
        ({"error": {"code": "APPLY_FAILED", "retryable": False}, "run_id": "r", "state": "DESTROYED"}, 500),
    ],
)
def test_status_codes(result, status):
    assert status_code(result) == status
