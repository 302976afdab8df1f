"""The Lambda handlers run the way Lambda runs them: AWS's runtime interface client
(``python -m awslambdaric ephemera.actions.lambda_entry.handler``, in its own process)
against the documented Runtime API on 127.0.0.1 (:mod:`tests.deploy.aws.runtime_api`),
fed the real event shapes: S3 notifications built by moto's S3 from the deploy plan's
notification configuration, the input a schedule of the plan sends, and direct invokes.
The config comes from a Secrets Manager secret (moto), checked against its SHA-256.

Facts quoted: S3 "Event message structure" -- version 2.1, ``Records[].s3.object.key``:
"The object key name value is URL encoded" (moto builds it with ``quote_plus``: spaces
as '+'); the test message ``{"Service": "Amazon S3", "Event": "s3:TestEvent", ...}``;
EventBridge Scheduler replaces ``<aws.scheduler.scheduled-time>`` "with ... The time you
specified for the schedule to invoke its target, for example, 2022-03-22T18:59:43Z".
"""

from __future__ import annotations

import json

import moto.s3.notifications
import pytest

from ephemera.assembly import load_config
from ephemera.context import Context
from ephemera.deploy.aws.plan import aws_plan
from ephemera.events.formats import parse_event
from ephemera.lifecycle import request_run
from ephemera.model import marker as markers
from ephemera.model.runs import RunState
from tests.deploy.aws.conftest import FAKE_KEY_ID, FAKE_SECRET, REGION, boto

pytestmark = pytest.mark.slow  # processes of the runtime interface client

ACCOUNT = "123456789012"  # moto's default account
SECRETS = (FAKE_KEY_ID, FAKE_SECRET)


def running(ctx: Context, key: str) -> str:
    run = request_run(ctx, parse_event({"idempotency_key": key})).run
    ctx.ledger.transition(run.run_id, RunState.APPLYING)
    return ctx.ledger.transition(run.run_id, RunState.RUNNING).run_id


def plan_files(aws_config: dict, tmp_path) -> dict[str, str]:
    """The files of ``ephemera deploy aws``'s plan for this config with a marker trigger bound to destroy
    and a nightly alarm bound to apply (planned with a service engine, as the deploy requires)."""
    data = {
        **aws_config,
        "engine": {"backend": "schematics"},
        "schematics": {"workspace_id": "us-south.workspace.ephemera-gpu.1a2b3c4d", "region": "us-south"},
        "ibm": {"iam_api_key": "fake-ibm-api-key-for-the-plan"},
        "aws_lambda": {"account_id": ACCOUNT, "region": REGION, "timeout": "2m"},
        "triggers": [
            {"name": "done", "kind": "object_write", "prefix": "outputs/", "suffix": [markers.SUCCESS, markers.FAILURE]},
            {"name": "nightly", "kind": "alarm", "cron": "0 2 * * *", "payload": {"params": {"seed": 3}}},
        ],
        "rules": [{"trigger": "done", "action": "destroy"}, {"trigger": "nightly", "action": "apply"}],
    }
    return aws_plan(
        load_config(data), zip_path="z.zip", secret_file="s.json", config_sha256="0" * 64, files_dir=str(tmp_path)
    ).files


@pytest.fixture
def s3_events(aws_config, s3_endpoint, tmp_path, monkeypatch) -> list[tuple[str, dict]]:
    """The bucket notifies as the plan configures it; what moto's S3 would send to Lambda
    (function ARN, event) is collected instead of run in moto's own Lambda."""
    bucket = aws_config["storage"]["bucket"]
    files = plan_files(aws_config, tmp_path)
    boto("s3", s3_endpoint).put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration=json.loads(files[f"s3/{bucket}-notification.json"])
    )
    sent: list[tuple[str, dict]] = []
    monkeypatch.setattr(moto.s3.notifications, "_invoke_awslambda", lambda account, body, arn, region: sent.append((arn, body)))
    return sent


def no_secret_in(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def test_a_marker_written_to_s3_destroys_its_run(aws_config, s3_events, function):
    ctx = Context(aws_config)
    run_id = running(ctx, "marker")
    bucket = aws_config["storage"]["bucket"]
    ctx.storage.put(bucket, f"outputs/{run_id}/result.csv", b"a,b\n")  # no filter matches: no event
    markers.write(ctx.storage, bucket, f"outputs/{run_id}/", markers.success(run_id, "smoke:main", 42))
    assert [arn for arn, _ in s3_events] == [f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ephemera-destroy-events"]
    event = s3_events[0][1]
    assert event["Records"][0]["eventVersion"] == "2.1" and event["Records"][0]["s3"]["object"]["key"].endswith("_SUCCESS.json")

    fn = function("destroy", "events")
    outcome = fn.invoke(event)
    assert outcome.kind == "response", (outcome, fn.output())
    assert outcome.body["run_id"] == run_id and outcome.body["state"] == "DESTROYED", outcome.body
    record = ctx.ledger.get(run_id)
    assert record.state == RunState.DESTROYED and "SUCCEEDED" in [t.state for t in record.transitions]
    again = fn.invoke(event)  # S3 delivers at least once: a second delivery changes nothing
    assert again.kind == "response" and again.body["reason_code"] == "ALREADY_DESTROYED", again.body
    no_secret_in(json.dumps(outcome.body), fn.output())


def test_url_encoded_keys_are_decoded_and_the_test_event_is_ignored(aws_config, s3_events, function, s3_endpoint):
    bucket = aws_config["storage"]["bucket"]
    key = "outputs/my run+1/_SUCCESS.json"
    Context(aws_config).storage.put(bucket, key, b"{}")
    ((_, event),) = s3_events
    sent = event["Records"][0]["s3"]["object"]["key"]
    assert " " not in sent and "my+run%2B1" in sent  # URL-form-encoded: a space as '+', '+' as %2B
    fn = function("destroy", "events")
    outcome = fn.invoke(event)
    assert outcome.kind == "response" and outcome.body["key"] == key, outcome.body  # decoded, then found to be no run's marker
    test_event = moto.s3.notifications._get_test_event(bucket)
    assert fn.invoke(test_event).body["reason_code"] == "TEST_EVENT"


def test_the_schedules_input_fires_its_action(aws_config, function, tmp_path):
    """The input of the plan's reaper schedule, as the scheduler sends it (context attributes replaced)."""
    files = plan_files(aws_config, tmp_path)
    target = json.loads(files["scheduler/ephemera-reaper-target.json"])
    assert target["Arn"].endswith(":function:ephemera-reap-events")
    text = (
        target["Input"]
        .replace("<aws.scheduler.scheduled-time>", "2026-12-07T04:05:00Z")
        .replace("<aws.scheduler.schedule-arn>", f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/ephemera/ephemera-reaper")
    )
    fn = function("reap", "events")
    outcome = fn.invoke(json.loads(text))
    assert outcome.kind == "response" and outcome.body.get("acted") == 0, (outcome.body, fn.output())


def test_direct_invokes_choose_only_what_the_allow_list_lets_them(aws_config, function):
    ctx = Context(aws_config)
    run_id = running(ctx, "direct")
    fn = function("status", "direct")
    outcome = fn.invoke({"run_id": run_id})
    assert outcome.kind == "response" and outcome.body["run"]["run_id"] == run_id and outcome.body["run"]["state"] == "RUNNING", (
        outcome.body
    )
    refused = fn.invoke({"run_id": run_id, "config": {"storage": {"backend": "localhost"}}})
    assert refused.body["error"]["code"] == "PARAM_INVALID" and "config" in refused.body["error"]["message"]
    apply = function("apply", "direct")
    for event, key in (
        ({"ephemera_kind": "manual", "run_id": "r-chosen"}, "run_id"),
        ({"Records": [{"s3": {}}]}, "Records"),
        ({"ephemera_kind": "alarm", "ephemera_trigger": "nightly", "ephemera_schedule_arn": "x"}, "ephemera_trigger"),
    ):
        body = apply.invoke(event).body
        assert body["error"]["code"] == "PARAM_INVALID" and f"'{key}'" in body["error"]["message"], body
    events_fn = function("apply", "events")
    body = events_fn.invoke({"ephemera_kind": "manual"}).body
    assert body["error"]["code"] == "EVENT_INVALID", body  # the events function takes S3 and its schedules only
    assert ctx.ledger.get(run_id).state == RunState.RUNNING


def test_a_swapped_config_secret_is_refused(aws_config, deployed, function, s3_endpoint):
    """Someone who can write the secret but not the function cannot change the config it runs."""
    swapped = {**aws_config, "timeouts": {**aws_config["timeouts"], "hard": "99h"}}
    boto("secretsmanager", s3_endpoint).put_secret_value(
        SecretId=deployed["EPHEMERA_CONFIG_SECRET"], SecretString=json.dumps(swapped)
    )
    fn = function("status", "direct")
    body = fn.invoke({"run_id": "r-x"}).body
    assert body["error"]["code"] == "CONFIG_INVALID" and "SHA-256" in body["error"]["message"], body
    no_secret_in(json.dumps(body), fn.output())


def test_an_unreachable_secret_store_makes_lambda_retry_the_event(function):
    """A retryable failure of an events function is an invocation error (Lambda retries async
    deliveries); a direct function answers with the error result instead."""
    env = {"AWS_ENDPOINT_URL_SECRETS_MANAGER": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard"}
    events_fn = function("reap", "events", **env)
    outcome = events_fn.invoke(
        {"ephemera_kind": "alarm", "ephemera_trigger": "r", "ephemera_schedule_arn": "a", "ephemera_time": "2026-12-07T04:05:00Z"}
    )
    assert outcome.kind == "error" and outcome.body["errorType"] == "RetryableEventError", outcome
    assert outcome.body["errorMessage"].startswith("CONFIG_UNAVAILABLE")
    direct = function("status", "direct", **env)
    outcome = direct.invoke({"run_id": "r-x"})
    assert outcome.kind == "response" and outcome.body["error"]["code"] == "CONFIG_UNAVAILABLE"
