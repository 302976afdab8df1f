"""The Lambda entry point in-process (its awslambdaric runs are in test_lambda_runtime.py):
what a schedule's input may carry, and the run it requests.

Fact (EventBridge Scheduler, context attributes): ``<aws.scheduler.scheduled-time>`` is
replaced by "The time you specified for the schedule to invoke its target, for example,
2022-03-22T18:59:43Z" -- the same on every retry of that fire."""

from __future__ import annotations

import json

import pytest

from ephemera.actions import lambda_entry
from ephemera.assembly import load_config
from ephemera.context import Context
from ephemera.deploy.bound import config_digest

FIRE = "2026-12-07T02:00:00Z"
ARN = "arn:aws:scheduler:us-east-1:123456789012:schedule/ephemera/nightly-apply"


@pytest.fixture
def env(local_config, monkeypatch) -> dict:
    """A deployment whose nightly alarm applies with params {folds: 7}; its config already fetched."""
    data = local_config(
        workload={"remote_params": ["folds"]},
        triggers=[{"name": "nightly", "kind": "alarm", "cron": "0 2 * * *", "payload": {"note": "n"}}],
        rules=[{"trigger": "nightly", "action": "apply", "params": {"params": {"folds": 7}}}],
    )
    config = load_config(data).to_dict(redact=False)
    Context(config).storage.create_bucket(config["storage"]["bucket"])
    digest = config_digest(config)
    monkeypatch.setitem(lambda_entry._configs, digest, config)
    monkeypatch.setattr("ephemera.actions.apply.apply_run", lambda ctx, run: run)  # the request is under test, not the apply
    return {
        "EPHEMERA_ACTION": "apply",
        "EPHEMERA_ENTRY": "events",
        "EPHEMERA_CONFIG_SECRET": "s",
        "EPHEMERA_CONFIG_SHA256": digest,
    }


def scheduled(**extra) -> dict:
    return {
        "params": {"folds": 7},
        "note": "n",
        "ephemera_kind": "alarm",
        "ephemera_trigger": "nightly",
        "ephemera_time": FIRE,
        "ephemera_schedule_arn": ARN,
        **extra,
    }


def test_a_schedule_fire_requests_one_run_named_by_its_time(env):
    first = lambda_entry.run(scheduled(), 60.0, env)
    assert first.get("ok") and first["run_id"], first
    run = Context(lambda_entry._configs[env["EPHEMERA_CONFIG_SHA256"]]).ledger.get(first["run_id"])
    assert run.job.params["folds"] == 7 and run.event["source"] == "eventbridge_scheduler"
    again = lambda_entry.run(scheduled(), 60.0, env)  # Lambda's retry of the same fire
    assert again.get("reason_code") == "DUPLICATE_EVENT" and again.get("run_id") == first["run_id"], again


@pytest.mark.parametrize(
    "event, field",
    [
        (scheduled(params={"folds": 9999}), "<event>"),  # params of the caller's own
        (scheduled(ephemera_trigger="other"), "ephemera_trigger"),  # no such alarm
        ({**scheduled(), "extra": 1}, "<event>"),
    ],
)
def test_an_alarm_is_only_what_the_deployments_schedule_sends(env, event, field):
    result = lambda_entry.run(event, 60.0, env)
    assert result["error"]["code"] == "EVENT_INVALID" and f"'{field}'" in result["error"]["message"], result


def test_the_reaper_schedule_is_reap_only(env):
    reaper = {
        "ephemera_kind": "alarm",
        "ephemera_trigger": "ephemera-reaper",
        "ephemera_time": FIRE,
        "ephemera_schedule_arn": ARN,
    }
    assert lambda_entry.run(reaper, 60.0, env)["error"]["code"] == "EVENT_INVALID"  # not to apply
    result = lambda_entry.run(reaper, 60.0, {**env, "EPHEMERA_ACTION": "reap"})
    assert result.get("acted") == 0, json.dumps(result)


def test_a_misconfigured_function_refuses_everything(env):
    assert lambda_entry.run(scheduled(), 60.0, {**env, "EPHEMERA_ENTRY": "public"})["error"]["code"] == "CONFIG_INVALID"
    assert lambda_entry.run(scheduled(), 60.0, {**env, "EPHEMERA_ACTION": "deploy"})["error"]["code"] == "CONFIG_INVALID"
    assert lambda_entry.run(scheduled(), 60.0, {**env, "EPHEMERA_CONFIG_SHA256": ""})["error"]["code"] == "CONFIG_INVALID"
