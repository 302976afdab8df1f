"""Bad input gets a clear result naming the problem and changes nothing; secrets
never appear in results, records, logs, exceptions or printed output."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest

from ephemera.actions import apply, destroy, reap, status
from ephemera.assembly import load_config
from ephemera.context import Context
from ephemera.errors import ConfigError
from tests.helpers import marker_event, marker_written, wait_for

pytestmark = pytest.mark.slow  # real applies with bad input

SECRET = "s3cr3t-HMAC-0123456789abcdef"
API_KEY = "iam-apikey-ZYXWVUT-987654321"


def snapshot(home: Path) -> dict:
    """Every file under the home with its content hash (activation logs excluded)."""
    return {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in home.rglob("*")
        if p.is_file() and ".tmp" not in p.parts and "terraformrc" not in p.name
    }


@pytest.fixture
def finished(local_cfg, faults):
    """A config with secrets, and one run that already ended and was destroyed."""
    config = local_cfg(ibm={"iam_api_key": API_KEY}, aws_s3={"access_key_id": "AKIATESTING", "secret_access_key": SECRET})
    run_id = apply.main({"config": config})["run_id"]
    ctx = Context(config)
    wait_for(lambda: marker_written(ctx, run_id), what="marker")
    assert destroy.main(marker_event(config, run_id))["state"] == "DESTROYED"
    return config, run_id


def cases(config: dict, run_id: str) -> list[tuple[str, object, dict, str, str]]:
    """(what, action, params, expected error code or 'ignored', words the error message must
    contain or the ignored result's reason_code)."""
    bucket = config["storage"]["bucket"]
    return [
        (
            "malformed COS event",
            destroy,
            {"config": config, "notification": {"bucket_name": bucket}, "key": 5},
            "EVENT_INVALID",
            "object_name",
        ),
        (
            "bad alarm time",
            apply,
            {"config": config, "ephemera_kind": "alarm", "ephemera_time": "yesterday"},
            "EVENT_INVALID",
            "ephemera_time",
        ),
        ("unknown kind", apply, {"config": config, "ephemera_kind": "telepathy"}, "EVENT_INVALID", "ephemera_kind"),
        ("oversized payload", apply, {"config": config, "blob": "x" * 300_000}, "EVENT_INVALID", "limit"),
        ("params not an object", apply, {"config": config, "params": "folds=3"}, "PARAM_INVALID", "params"),
        ("bad workspace name", apply, {"config": config, "workspace": "../etc"}, "PARAM_INVALID", "workspace"),
        ("bad run id", destroy, {"config": config, "run_id": "Robert'); DROP"}, "PARAM_INVALID", "run_id"),
        ("unknown run id", destroy, {"config": config, "run_id": "ws-no-such-run"}, "RUN_NOT_FOUND", "ws-no-such-run"),
        ("unknown run id (status)", status, {"config": config, "run_id": "ws-no-such-run"}, "RUN_NOT_FOUND", "ws-no-such-run"),
        ("marker of an unknown run", destroy, marker_event(config, "ws-no-such-run"), "ignored", "UNKNOWN_RUN"),
        ("marker of a finished run", destroy, marker_event(config, run_id), "ignored", "ALREADY_DESTROYED"),
        ("unrelated write", destroy, {**marker_event(config, run_id), "key": "inbox/photo.jpg"}, "ignored", "NOT_A_MARKER"),
        (
            "write in another bucket",
            destroy,
            {**marker_event(config, run_id), "bucket": "other-bucket"},
            "ignored",
            "OUTSIDE_OUTPUT_PREFIX",
        ),
        (
            "unknown config key",
            apply,
            {"config": {**config, "storage": {**config["storage"], "buket": "x"}}},
            "CONFIG_INVALID",
            "storage.buket",
        ),
        ("bad duration", reap, {"config": {**config, "timeouts": {"hard": "forever"}}}, "CONFIG_INVALID", "timeouts.hard"),
        (
            "cron that never fires",
            apply,
            {"config": {**config, "triggers": [{"name": "feb30", "kind": "alarm", "cron": "0 0 30 2 *"}]}},
            "CONFIG_INVALID",
            "never fires",
        ),
        (
            "bad cron",
            apply,
            {"config": {**config, "triggers": [{"name": "bad", "kind": "alarm", "cron": "61 * * * *"}]}},
            "CONFIG_INVALID",
            "triggers[0].cron",
        ),
        ("not an object", apply, ["apply", "everything"], "EPHEMERA_ERROR", "JSON object"),
    ]


def test_each_bad_input_is_named_and_changes_nothing(finished, home, capfd, caplog, faults):
    config, run_id = finished
    caplog.set_level(logging.INFO)
    before = snapshot(home)
    seen = []
    for what, action, params, code, words in cases(config, run_id):
        result = action.main(params)
        faults.inject()
        seen.append(json.dumps(result))
        if code == "ignored":
            assert result.get("ok") and result["ignored"] and result["reason_code"] == words and result["reason"], (what, result)
        else:
            assert result["error"]["code"] == code and words in result["error"]["message"], (what, result)
        assert snapshot(home) == before, f"{what} changed something"
    out, err = capfd.readouterr()
    for text in seen + [out, err, caplog.text]:
        assert SECRET not in text and API_KEY not in text


def test_secrets_never_leak(finished, home, capfd, caplog):
    config, run_id = finished
    caplog.set_level(logging.DEBUG)
    texts = [json.dumps(reap.main({"config": config})), json.dumps(status.main({"config": config, "run_id": run_id}))]
    # a secret put where a config error quotes the value
    for bad in (
        {"storage": {"backend": "aws_s3", "bucket": "Not_A_Bucket"}, "aws_s3": {"secret_access_key": SECRET}},
        {"ibm_cos": {"access_key_id": 12345, "secret_access_key": SECRET}},
        {"aws_s3": {"endpoint": 42, "secret_access_key": SECRET}},
        {"ibm": {"iam_api_key": [API_KEY]}},
        {"aws_s3": {"secret_access_key": {"value": SECRET}}},
    ):
        texts.append(json.dumps(apply.main({"config": {**config, **bad}})))
        with pytest.raises(ConfigError) as info:  # a secret in the wrong shape is not quoted back
            load_config({**config, **bad})
        texts.append(str(info.value))
    from ephemera.cli.runs import run_details, runs_table

    ctx = Context(config)
    texts += [runs_table(ctx), run_details(ctx, ctx.ledger.get(run_id))]
    out, err = capfd.readouterr()
    stored = [p.read_text(errors="replace") for p in home.rglob("*.json") if "agent.json" not in p.name]
    logs = [p.read_text(errors="replace") for p in home.rglob("*.log")]
    assert logs and stored
    for text in texts + stored + logs + [out, err, caplog.text]:
        assert SECRET not in text and API_KEY not in text
    # the agent config (the local stand-in for VM user data) is deleted with the run
    assert not list(home.rglob("agent.json"))
