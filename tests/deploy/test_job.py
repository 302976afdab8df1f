"""The Code Engine job entry point (``python -m ephemera.actions.job``).

Facts: a job started by a COS subscription gets the event JSON in ``CE_DATA`` and
``CE_TYPE=com.ibm.cloud.cos.document.write``; "The executable program in the image must
exit with a code of zero to be considered successful", and an instance that exits
non-zero is run again up to ``--retrylimit`` times.
"""

from __future__ import annotations

import json

import pytest

from ephemera.actions.job import run as run_job
from ephemera.context import Context


@pytest.fixture
def config(local_config) -> dict:
    cfg = local_config()
    Context(cfg).storage.create_bucket(cfg["storage"]["bucket"])
    return cfg


def _cos(bucket: str, key: str | None) -> str:
    body = {"bucket": bucket, "endpoint": "", "operation": "Object:Write",
            "notification": {"bucket_name": bucket, "event_type": "Object:Write", "object_length": "3"}}
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
    env = {"CE_TYPE": "com.ibm.cloud.cos.document.write", "EPHEMERA_CONFIG_JSON": json.dumps(config), "EPHEMERA_ACTION": "apply",
           "EPHEMERA_RULE_PARAMS": json.dumps({"params": {"folds": 7}}), "CE_DATA": _cos("ephemera-test", "inputs/new.csv")}
    code, result = run_job(env)
    assert code == 0 and result["ok"], result
    assert Context(config).ledger.get(result["run_id"]).job.params["folds"] == 7
