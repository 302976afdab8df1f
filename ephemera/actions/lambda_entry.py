"""The AWS Lambda entry point: ``ephemera.actions.lambda_entry.handler``.

``ephemera deploy aws`` (:mod:`ephemera.deploy.aws.plan`) makes two kinds of function,
told apart by ``EPHEMERA_ENTRY``; each runs the one action ``EPHEMERA_ACTION`` names:

- **direct** (``<prefix>-<action>``): invoked through Lambda's ``Invoke`` API, which
  only an IAM principal allowed ``lambda:InvokeFunction`` on it can call (the deploy
  gives no function a URL and no resource policy for it). The request then chooses
  only what :mod:`ephemera.actions.remote` allows (the same allow-list as a Code
  Engine function): never the action, the config or a run id for a new run; an S3
  notification or a schedule's input sent here is refused.
- **events** (``<prefix>-<action>-events``): invoked by S3 (its resource policy allows
  ``s3.amazonaws.com`` for the bucket's ARN and the account only) and by EventBridge
  Scheduler (through the scheduler's role). It takes an S3 notification -- every
  record, each an object write, the key URL-form-decoded (S3: "The s3 key provides
  information about the bucket and object involved in the event. The object key name
  value is URL encoded") -- or the input its schedule was given (``ephemera_kind:
  alarm``, the trigger, ``ephemera_time`` = ``<aws.scheduler.scheduled-time>``, which
  names the fire so a retried delivery is the same event). S3's ``s3:TestEvent`` is
  ignored. Anything else is refused. ``EPHEMERA_RULE_PARAMS`` (JSON) are the params of
  the object-write rule the function serves (an S3 notification carries none).

The config comes from the Secrets Manager secret ``EPHEMERA_CONFIG_SECRET``, read once
per execution environment, and is used only when its SHA-256 (over the canonical JSON,
:mod:`ephemera.deploy.bound`) equals ``EPHEMERA_CONFIG_SHA256``, which the deploy sets
in the function's configuration: a secret changed behind the deployment's back is
refused. The secret never appears in a result, a log line or an exception.

The time limit is the invocation's own (``context.get_remaining_time_in_millis()``,
from the runtime's ``Lambda-Runtime-Deadline-Ms``) less a margin to return in. S3 and
the scheduler invoke asynchronously: Lambda retries an invocation that raised (up to
``aws_lambda.event_retries`` times), so an events function raises only when a retry
could help (a ``retryable`` error result: a busy workspace, a throttled service);
an ignored, malformed or failed-for-good event returns its result.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from typing import Any, Mapping

from ephemera.actionkit import ReasonCode, ignored, time_limit
from ephemera.actions.entry import _deployed, invoke
from ephemera.actions.job import rule_params
from ephemera.actions.remote import check_remote
from ephemera.assembly import load_config
from ephemera.config.aws_lambda import AwsLambdaSection
from ephemera.deploy.bound import config_digest
from ephemera.errors import ConfigError, ConfigUnavailableError, EphemeraError, EventError
from ephemera.events.cloud_events import is_s3_notification

log = logging.getLogger("ephemera.lambda")
ACTION_ENV = "EPHEMERA_ACTION"  # the action this function runs
ENTRY_ENV = "EPHEMERA_ENTRY"  # direct | events
SECRET_ENV = "EPHEMERA_CONFIG_SECRET"  # the Secrets Manager secret holding the config
DIGEST_ENV = "EPHEMERA_CONFIG_SHA256"  # the SHA-256 of the config the deployment bound
SCHEDULE_ARN = "ephemera_schedule_arn"  # set by the schedule's input: <aws.scheduler.schedule-arn>
ENTRIES = ("direct", "events")
MARGIN_SECONDS = 5.0  # kept back from the invocation's deadline to record and return
_configs: dict[str, dict] = {}  # digest -> config: one fetch per execution environment


class RetryableEventError(Exception):
    """Raised to Lambda so that it retries an asynchronous delivery; names the error code only."""


def _fetch_secret(name: str) -> str:
    import boto3  # lazily: the SDK is the runtime's
    from botocore.exceptions import BotoCoreError, ClientError  # with boto3, lazily

    try:
        value = boto3.client("secretsmanager").get_secret_value(SecretId=name)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("ThrottlingException", "InternalServiceError", "ServiceUnavailable"):
            raise ConfigUnavailableError(f"the config secret could not be read ({code}); a later delivery may succeed") from None
        raise ConfigError(
            SECRET_ENV,
            f"the secret could not be read ({code})",
            "re-deploy with `ephemera deploy aws`; the function's role must allow secretsmanager:GetSecretValue on it",
        ) from None
    except BotoCoreError as exc:
        raise ConfigUnavailableError(f"Secrets Manager was not reachable ({type(exc).__name__})") from None
    text = value.get("SecretString")
    if not isinstance(text, str):
        raise ConfigError(SECRET_ENV, "holds no text", "re-deploy with `ephemera deploy aws` (it stores the config as JSON text)")
    return text


def bound_config(env: Mapping[str, str]) -> dict:
    """The deployment's config: the secret, checked against the digest the function carries."""
    name, digest = env.get(SECRET_ENV), env.get(DIGEST_ENV)
    if not name or not digest:
        raise ConfigError(
            SECRET_ENV if not name else DIGEST_ENV, "is not set", "deploy with `ephemera deploy aws` (it sets both)"
        )
    if digest in _configs:
        return _configs[digest]
    try:
        config = json.loads(_fetch_secret(name))
    except ValueError:
        raise ConfigError(SECRET_ENV, "does not hold JSON", "re-deploy with `ephemera deploy aws`") from None
    if not isinstance(config, dict) or not hmac.compare_digest(config_digest(config), digest):
        raise ConfigError(
            SECRET_ENV,
            "is not the config this deployment bound (its SHA-256 differs)",
            "re-deploy with `ephemera deploy aws` to change the config",
        )
    _configs[digest] = config
    return config


def is_s3_test_event(event: Any) -> bool:
    """S3's test message: ``{"Service": "Amazon S3", "Event": "s3:TestEvent", ...}``."""
    return isinstance(event, dict) and event.get("Event") == "s3:TestEvent"


def _direct(action: str, event: dict, config: dict) -> dict:
    check_remote(
        action, event, load_config(config, engine_checks=False)
    )  # refuses Records, an alarm, config, run_id for apply, ...
    return invoke(action, {**event, "config": config})


def _events(action: str, event: dict, config: dict, env: Mapping[str, str]) -> dict:
    if is_s3_test_event(event):
        return {"ok": True, **ignored(ReasonCode.TEST_EVENT, "S3's s3:TestEvent is not an object write")}
    base = {**rule_params(env, "ephemera deploy aws"), "config": config}
    if is_s3_notification(event):
        records = event["Records"]
        results = [invoke(action, {**base, "Records": [record]}) for record in records]
        if len(results) == 1:
            return results[0]
        failed = [r for r in results if "error" in r]
        return {"records": results, **({"error": failed[0]["error"]} if failed else {})}
    if event.get("ephemera_kind") == "alarm" and isinstance(event.get(SCHEDULE_ARN), str):
        _check_scheduled(action, event, config)
        return invoke(action, {**base, **event})
    raise EventError(
        "<event>",
        "is neither an S3 notification nor the input of this deployment's schedules",
        "invoke the direct function (without -events) for a manual request",
    )


def _check_scheduled(action: str, event: dict, raw_config: dict) -> None:
    """EventError unless ``event`` is what one of the deployment's schedules for ``action``
    sends: an alarm trigger of the config bound to this action by a rule (or the reaper's
    schedule), with exactly that rule's params and the trigger's payload. Whoever may
    invoke the function can then only fire an alarm early, never with params of their own."""
    config = load_config(raw_config, engine_checks=False)  # the bound config (its digest was checked)
    name = event.get("ephemera_trigger")
    own = {k: v for k, v in event.items() if not k.startswith("ephemera_")}
    prefix = config.section(AwsLambdaSection).prefix
    expected: list[dict]
    if action == "reap" and name == f"{prefix}-reaper" and not any(r.action == "reap" for r in config.rules):
        expected = [{}]
    else:
        trig = next((t for t in config.triggers if t.name == name and t.kind == "alarm"), None)
        expected = [
            {**r.params, **trig.payload} for r in config.rules if trig is not None and r.trigger == name and r.action == action
        ]
    if not expected:
        raise EventError(
            "ephemera_trigger",
            f"{name!r} is not an alarm this deployment binds to '{action}'",
            "invoke the direct function for a manual request",
        )
    if own not in expected:
        raise EventError(
            "<event>", f"its params are not the ones the schedule of '{name}' sends", "re-deploy with `ephemera deploy aws`"
        )


def _retryable(result: dict) -> bool:
    errors = [result.get("error")] + [r.get("error") for r in result.get("records", []) if isinstance(r, dict)]
    return any(isinstance(e, dict) and e.get("retryable") for e in errors)


def run(event: Any, remaining_seconds: float, env: Mapping[str, str] | None = None) -> dict:
    """The action's result for one invocation; never raises."""
    env = os.environ if env is None else env
    action, entry = env.get(ACTION_ENV, ""), env.get(ENTRY_ENV, "")
    try:
        _deployed(action)
        if entry not in ENTRIES:
            raise ConfigError(ENTRY_ENV, f"'{entry}' is not one of {', '.join(ENTRIES)}", "re-deploy with `ephemera deploy aws`")
        if not isinstance(event, dict):
            raise EventError(
                "<event>", f"expected a JSON object, got {type(event).__name__}", "invoke the function with a JSON object"
            )
        config = bound_config(env)
        with time_limit(max(1.0, remaining_seconds - MARGIN_SECONDS)):
            return _direct(action, event, config) if entry == "direct" else _events(action, event, config, env)
    except EphemeraError as exc:
        log.warning("%s (%s): request refused: %s", action, entry, exc.message)
        return {"error": exc.to_dict()}


def handler(event: Any, context: Any) -> dict:
    """Lambda's handler: the result, or RetryableEventError for an event a retry may handle."""
    result = run(event, context.get_remaining_time_in_millis() / 1000.0)
    if os.environ.get(ENTRY_ENV) == "events" and _retryable(result):
        error = result.get("error") or {}
        raise RetryableEventError(f"{error.get('code', 'ERROR')}: retrying the delivery may succeed")
    return result
