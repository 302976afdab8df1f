"""The event sources of the AWS command plan: an EventBridge Scheduler schedule per alarm
rule (and the reaper's), and per object-write rule S3's permission to invoke its function
and the bucket's notification configuration; with the checks S3 makes of those filters.
"""

from __future__ import annotations

import json
from datetime import datetime

from ephemera.config import Config, ConfigError
from ephemera.config.alarms import validate_alarm
from ephemera.config.aws_lambda import AwsLambdaSection
from ephemera.deploy.aws import policies as pol
from ephemera.deploy.aws.commands import AwsPlan, aws_name, cli, role_steps, rules, triggers_of
from ephemera.deploy.aws.policies import Account
from ephemera.deploy.aws.schedules import schedule_args
from ephemera.deploy.openwhisk import trigger_instances
from ephemera.deploy.steps import Step
from ephemera.storage.aws_s3.config import S3Section
from ephemera.storage.aws_s3.spec import AwsS3Spec


def check_object_writes(config: Config, region: str) -> None:
    """ConfigError unless every bound object-write trigger is on AWS S3 in ``region``, its filters disjoint per bucket."""
    seen: dict[str, list[tuple[tuple[str, str], str]]] = {}
    for i, trig in enumerate(triggers_of(config)):
        if trig["kind"] != "object_write" or not any(r["trigger"] == trig["name"] for r in rules(config)):
            continue
        if config.storage.backend != AwsS3Spec.name:
            raise ConfigError(
                f"triggers[{i}]",
                f"an object-write trigger on {config.storage.backend} storage: only AWS S3 notifies Lambda",
                "use storage.backend aws_s3 with the bucket in AWS",
            )
        if config.section(S3Section).region != region:
            raise ConfigError(
                "aws_lambda.region",
                f"'{region}' is not the bucket's region '{config.section(S3Section).region}': "
                "S3 notifies only functions of its own region",
                "deploy the functions in the bucket's region",
            )
        for _, suffix in trigger_instances(trig["name"], trig):
            here = (trig["prefix"] or "", suffix)
            for other, owner in seen.get(trig["bucket"], []):
                if pol.overlapping(here, other) and owner != trig["name"]:
                    raise ConfigError(
                        f"triggers[{i}].prefix",
                        f"its filter {here} overlaps trigger '{owner}''s {other} on bucket "
                        f"'{trig['bucket']}': S3 refuses overlapping notification filters",
                        "give the triggers disjoint prefixes or suffixes",
                    )
            seen.setdefault(trig["bucket"], []).append((here, trig["name"]))


def schedule_input(trig: dict, rule_params: dict) -> str:
    """A schedule's input: the rule's params, the trigger's payload and the scheduler's placeholders."""
    data = {
        **rule_params,
        **trig["payload"],
        "ephemera_kind": "alarm",
        "ephemera_trigger": trig["name"],
        "ephemera_time": "<aws.scheduler.scheduled-time>",
        "ephemera_schedule_arn": "<aws.scheduler.schedule-arn>",
    }
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def schedule_steps(
    config: Config, account: Account, prefix: str, served: dict[str, str], plan: AwsPlan, now: datetime | None
) -> list[Step]:
    """The scheduler's role, the schedule group and one schedule per alarm rule (and the reaper's)."""
    region, settings = account.region, config.section(AwsLambdaSection)
    schedules: list[tuple[str, str, list[str], str]] = []  # name, function, when-args, input
    for i, trig in enumerate(triggers_of(config)):
        if trig["kind"] != "alarm":
            continue
        for rule in (r for r in rules(config) if r["trigger"] == trig["name"]):
            path = f"triggers[{i}]"
            schedule = trig.get("schedule") or validate_alarm(path, trig)
            schedules.append(
                (
                    aws_name(rule["name"]),
                    served[rule["name"]],
                    schedule_args(path, schedule, now),
                    schedule_input(trig, rule["params"]),
                )
            )
    if not any(rule["action"] == "reap" for rule in rules(config)):
        reaper = {"name": f"{prefix}-reaper", "payload": {}}
        cron = validate_alarm("aws_lambda.reaper_cron", {"name": reaper["name"], "cron": settings.reaper_cron})
        schedules.append(
            (
                aws_name(f"{prefix}-reaper"),
                aws_name(f"{prefix}-reap-events"),
                schedule_args("aws_lambda.reaper_cron", cron, now),
                schedule_input(reaper, {}),
            )
        )
    if not schedules:
        return []
    role = aws_name(f"{prefix}-scheduler")
    trust = plan.put("iam/scheduler-trust.json", json.dumps(pol.scheduler_trust(account), indent=2))
    policy = plan.put(f"iam/{role}-policy.json", json.dumps(pol.scheduler_policy(account, [s[1] for s in schedules]), indent=2))
    steps = role_steps(role, region, trust, policy)
    group = cli("scheduler", "get-schedule-group", "--name", prefix, region=region)
    steps.append(
        Step(
            what=f"schedule group {prefix}",
            probe=group,
            update=group,
            create=cli("scheduler", "create-schedule-group", "--name", prefix, region=region),
        )
    )
    retry = {"MaximumRetryAttempts": settings.event_retries, "MaximumEventAgeInSeconds": settings.event_max_age}
    for name, function, when, data in schedules:
        target = plan.put(
            f"scheduler/{name}-target.json",
            json.dumps(
                {
                    "Arn": pol.function_arn(account, function),
                    "RoleArn": pol.role_arn(account, role),
                    "Input": data,
                    "RetryPolicy": retry,
                },
                indent=2,
            ),
        )
        args = [
            "--name",
            name,
            "--group-name",
            prefix,
            *when,
            "--flexible-time-window",
            '{"Mode":"OFF"}',
            "--target",
            f"file://{target}",
            "--state",
            "ENABLED",
        ]
        expression = when[when.index("--schedule-expression") + 1]
        steps.append(
            Step(
                what=f"schedule {name}: {expression} -> {function}",
                probe=cli("scheduler", "get-schedule", "--name", name, "--group-name", prefix, region=region),
                update=cli("scheduler", "update-schedule", *args, region=region),
                create=cli("scheduler", "create-schedule", *args, region=region),
            )
        )
    return steps


def notification_steps(config: Config, account: Account, served: dict[str, str], plan: AwsPlan) -> list[Step]:
    """S3's permission to invoke each object-write function, and each bucket's notification configuration."""
    region = account.region
    per_bucket: dict[str, list[tuple[str, str, str, str]]] = {}
    permitted: set[tuple[str, str]] = set()
    steps: list[Step] = []
    for trig in triggers_of(config):
        if trig["kind"] != "object_write":
            continue
        for rule in (r for r in rules(config) if r["trigger"] == trig["name"]):
            function = served[rule["name"]]
            for j, (_, suffix) in enumerate(trigger_instances(trig["name"], trig)):
                per_bucket.setdefault(trig["bucket"], []).append(
                    (aws_name(f"{rule['name']}-{j + 1}"), function, trig["prefix"] or "", suffix)
                )
            if (function, trig["bucket"]) in permitted:
                continue
            permitted.add((function, trig["bucket"]))
            sid = aws_name(f"s3-{trig['bucket']}")
            add = cli(
                "lambda",
                "add-permission",
                "--function-name",
                function,
                "--statement-id",
                sid,
                "--action",
                "lambda:InvokeFunction",
                "--principal",
                "s3.amazonaws.com",
                "--source-arn",
                pol.bucket_arn(account, trig["bucket"]),
                "--source-account",
                account.id,
                region=region,
            )
            steps.append(
                Step(
                    what=f"permission of S3 (bucket {trig['bucket']}, account {account.id}) to invoke {function} (replaced)",
                    probe=cli("lambda", "remove-permission", "--function-name", function, "--statement-id", sid, region=region),
                    update=add,
                    create=add,
                )
            )
    for bucket, filters in per_bucket.items():
        path = plan.put(f"s3/{bucket}-notification.json", json.dumps(pol.notification_configuration(account, filters), indent=2))
        steps.append(
            Step(
                what=f"notifications of bucket {bucket} (replaces its whole notification configuration)",
                create=cli(
                    "s3api",
                    "put-bucket-notification-configuration",
                    "--bucket",
                    bucket,
                    "--notification-configuration",
                    f"file://{path}",
                    region=region,
                ),
            )
        )
    return steps
