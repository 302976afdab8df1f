"""The Code Engine job entry point (``python -m ephemera.actions.job``).

Facts: a job started by a COS subscription gets the event JSON in ``CE_DATA`` and
``CE_TYPE=com.ibm.cloud.cos.document.write``; one started by a cron subscription gets
"CE_DATA ... If the data ... is JSON format, then the environment variable is that JSON
output", ``CE_TYPE=dev.knative.sources.ping``, ``CE_TIME`` ("The time that the event was
generated") and ``CE_SOURCE`` (``/apis/v1/namespaces/[PROJECT_SUBDOMAIN]/pingsources/
[SUBSCRIPTION_NAME]``); "The executable program in the image must exit with a code of
zero to be considered successful", and an instance that exits non-zero is run again up
to ``--retrylimit`` times.
"""

from __future__ import annotations

import json

import pytest

from ephemera.actions.job import run as run_job
from ephemera.assembly import load_config
from ephemera.context import Context
from ephemera.deploy.code_engine import code_engine_plan


@pytest.fixture
def config(local_config) -> dict:
    cfg = local_config()
    Context(cfg).storage.create_bucket(cfg["storage"]["bucket"])
    return cfg


def _cos(bucket: str, key: str | None) -> str:
    body = {
        "bucket": bucket,
        "endpoint": "",
        "operation": "Object:Write",
        "notification": {"bucket_name": bucket, "event_type": "Object:Write", "object_length": "3"},
    }
    if key:
        body["key"] = body["notification"]["object_name"] = key
    return json.dumps(body)


def test_ignored_and_malformed_events_exit_zero(config):
    env = {"CE_TYPE": "com.ibm.cloud.cos.document.write", "EPHEMERA_CONFIG_JSON": json.dumps(config)}
    code, result = run_job({**env, "CE_DATA": _cos("ephemera-test", "uploads/data.csv")})
    assert code == 0 and result["reason_code"] == "NOT_A_MARKER"
    code, result = run_job({**env, "CE_DATA": _cos("ephemera-test", None), "CE_SUBJECT": "uploads/data.csv"})
    assert code == 0 and result["key"] == "uploads/data.csv"  # the key from CE_SUBJECT where the body lacks it
    code, result = run_job({**env, "CE_DATA": "not json"})
    assert code == 0 and "CE_DATA" in result["error"]["message"]
    code, result = run_job({"CE_DATA": _cos("ephemera-test", "k"), "CE_TYPE": "com.ibm.cloud.cos.document.write"})
    assert code == 0 and result["error"]["code"] == "CONFIG_INVALID"  # no bound config: a retry cannot help


def test_the_rules_params_reach_the_action(config, monkeypatch):
    monkeypatch.setattr("ephemera.actions.apply.apply_run", lambda ctx, run: run)  # the event and params are under test
    env = {
        "CE_TYPE": "com.ibm.cloud.cos.document.write",
        "EPHEMERA_CONFIG_JSON": json.dumps(config),
        "EPHEMERA_ACTION": "apply",
        "EPHEMERA_RULE_PARAMS": json.dumps({"params": {"folds": 7}}),
        "CE_DATA": _cos("ephemera-test", "inputs/new.csv"),
    }
    code, result = run_job(env)
    assert code == 0 and result["ok"], result
    assert Context(config).ledger.get(result["run_id"]).job.params["folds"] == 7


def _cron_job_env(config: dict, rule: str, fired: str) -> dict:
    """The environment of the job run a cron subscription of the deploy plan starts: its
    data as the plan gives it, the job's own variables, the bound config."""
    steps = code_engine_plan(load_config(config), bundle_dir="b", env_file="e")
    sub = next(s.create for s in steps if s.create[2:5] == ["sub", "cron", "create"] and rule in s.create)
    job = next(s.create for s in steps if s.create[2:4] == ["job", "create"] and sub[sub.index("--destination") + 1] in s.create)
    assert sub[sub.index("--destination-type") + 1] == "job"
    env = dict(job[i + 1].split("=", 1) for i, word in enumerate(job) if word == "--env")
    return {
        **env,
        "EPHEMERA_CONFIG_JSON": json.dumps(config),
        "CE_DATA": sub[sub.index("--data") + 1],
        "CE_TYPE": "dev.knative.sources.ping",
        "CE_TIME": fired,
        "CE_ID": "c329ed76",
        "CE_SOURCE": f"/apis/v1/namespaces/6b0v3x9xek5/pingsources/{rule}",
        "CE_SPECVERSION": "1.0",
    }


def test_a_cron_ping_applies_in_the_job_the_subscription_starts(local_config, monkeypatch):
    """The cron -> job path: the nightly alarm's ping, delivered to its job, requests a run
    with the rule's params, named by the fire time (a re-run instance is the same event)."""
    applied = []
    monkeypatch.setattr("ephemera.actions.apply.apply_run", lambda ctx, run: applied.append(run.run_id) or run)
    config = local_config(
        engine={"backend": "schematics"},
        schematics={"workspace_id": "us-south.workspace.ephemera-gpu.1a2b3c4d", "region": "us-south"},
        ibm={"iam_api_key": "APIKEY-test-only"},
        triggers=[{"name": "nightly", "kind": "alarm", "cron": "0 2 * * *", "payload": {"params": {"folds": 3}}}],
        rules=[{"trigger": "nightly", "action": "apply"}],
    )
    Context(config).storage.create_bucket(config["storage"]["bucket"])
    env = _cron_job_env(config, "nightly-apply", "2026-12-08T02:00:00.0596Z")
    assert env["EPHEMERA_ACTION"] == "apply"
    code, result = run_job(env)
    assert code == 0 and result["ok"] and applied == [result["run_id"]], result
    run = Context(config).ledger.get(result["run_id"])
    event = run.event
    assert event["kind"] == "alarm" and event["trigger"] == "nightly" and event["source"] == "code_engine_cron", event
    assert event["time"].startswith("2026-12-08T02:00:00") and run.job.params["folds"] == 3
    again_code, again = run_job(env)  # the same job run retried
    assert again_code == 0 and again.get("duplicate") is True and applied == [result["run_id"]]
