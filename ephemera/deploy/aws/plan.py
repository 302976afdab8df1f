"""The command plan of ``ephemera deploy aws`` (the ``aws`` CLI), and the files it reads.

From one config (section ``aws_lambda``) the plan makes exist, in the account and region:

- the secret ``<prefix>-config`` (Secrets Manager) holding the config, from a 0600 file
  (``--secret-string file://...``: never on a command line);
- per function a role ``<prefix>-fn-<function>`` (:mod:`ephemera.deploy.aws.policies`)
  and the function, from the Lambda zip, handler
  ``ephemera.actions.lambda_entry.handler``, with ``EPHEMERA_ACTION``,
  ``EPHEMERA_ENTRY``, the secret's name and the config's SHA-256 in its environment
  (no secret). **Direct** functions ``<prefix>-apply|destroy|status|reap`` serve
  ``aws lambda invoke`` by IAM principals; **events** functions
  ``<prefix>-<action>-events`` (or ``<prefix>-<rule>-events`` for an object-write rule
  with params) serve S3 and the schedules, with their async retries set;
- for alarm rules (and the reaper, ``aws_lambda.reaper_cron``, unless a rule binds
  ``reap``): the scheduler's role, the schedule group ``<prefix>`` and one schedule per
  rule, its ``cron()`` translated (:mod:`ephemera.deploy.aws.schedules`), its input the
  rule's params, the trigger's payload and the fire time;
- for object-write rules: the permission of S3 to invoke the function (bucket ARN and
  account as conditions) and the bucket's notification configuration with prefix and
  suffix filters. ``put-bucket-notification-configuration`` *replaces* the bucket's
  whole configuration: a bucket that notifies anything else must not be named here.

Each resource is probed and updated or created, so the plan can run again after any
config change. Refused with a ConfigError naming the key: an engine that keeps its
state on the deploying machine, a time limit over ``timeouts.action``, no
``aws_lambda.account_id``, object-write triggers on storage that is not AWS S3 (or in
another region), and filters S3 would refuse as overlapping.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime

from ephemera.config import Config, ConfigError
from ephemera.config.alarms import validate_alarm
from ephemera.config.aws_lambda import AwsLambdaSection
from ephemera.deploy.aws import policies as pol
from ephemera.deploy.aws.policies import Account, Function
from ephemera.deploy.aws.schedules import schedule_args
from ephemera.deploy.checks import check_engine_and_files, check_time_limit
from ephemera.deploy.openwhisk import trigger_instances
from ephemera.deploy.steps import Step
from ephemera.storage.aws_s3.config import S3Section
from ephemera.storage.aws_s3.spec import AwsS3Spec

HANDLER = "ephemera.actions.lambda_entry.handler"
DIRECT_ACTIONS = ("apply", "destroy", "status", "reap")
MAX_ENV_BYTES = 4096  # Lambda: "the total size of all environment variables doesn't exceed 4 KB"
MAX_NAME = 64  # function and role names: at most 64 characters
LAMBDA_HOME = "/tmp/ephemera"  # the config's home names the deploying machine; /tmp is a function's only writable folder


@dataclass
class AwsPlan:
    """The plan: its steps, and the files its commands read (``file://`` paths under ``root``)."""

    root: str  # the folder the plan's files are written to (absolute)
    steps: list[Step] = field(default_factory=list)  # in order
    files: dict[str, str] = field(default_factory=dict)  # path relative to root -> content (no secret)
    functions: list[Function] = field(default_factory=list)  # every function it deploys

    def put(self, relative: str, content: str) -> str:
        """Keep a file for the plan; its absolute path, as the commands name it."""
        self.files[relative] = content
        return f"{self.root.rstrip('/')}/{relative}"


def aws_name(text: str) -> str:
    """A Lambda/IAM/Scheduler name: letters, digits, '-' and '_' only, at most 64."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", text)[:MAX_NAME]


def _cli(*args: str, region: str) -> list[str]:
    return ["aws", *args, "--region", region]


def _triggers(config: Config) -> list[dict]:
    """The triggers as the plan's step builders take them (plain values, parsed schedule)."""
    return [t.to_dict() for t in config.triggers]


def _rules(config: Config) -> list[dict]:
    return [r.to_dict() for r in config.rules]


def _functions(config: Config, prefix: str, triggers: dict[str, dict]) -> tuple[list[Function], dict[str, str]]:
    """Every function, and rule name -> the events function serving it."""
    fns: dict[str, Function] = {}
    for action in DIRECT_ACTIONS:
        name = aws_name(f"{prefix}-{action}")
        fns[name] = Function(name, action, "direct")
    served: dict[str, str] = {}
    for rule in _rules(config):
        own = triggers[rule["trigger"]]["kind"] == "object_write" and rule["params"]
        name = aws_name(f"{prefix}-{rule['name']}-events" if own else f"{prefix}-{rule['action']}-events")
        if name in fns and (fns[name].action != rule["action"] or fns[name].entry != "events"):
            raise ConfigError("rules", f"rule '{rule['name']}' would need the function name '{name}', already taken",
                              "rename the rule")
        fns.setdefault(name, Function(name, rule["action"], "events", rule["params"] if own else {}))
        served[rule["name"]] = name
    if not any(rule["action"] == "reap" for rule in _rules(config)):
        name = aws_name(f"{prefix}-reap-events")
        fns.setdefault(name, Function(name, "reap", "events"))
    return list(fns.values()), served


def _storage_by_role(config: Config) -> bool:
    """Whether the functions reach storage with their own role (AWS S3 without keys in the config)."""
    return config.storage.backend == AwsS3Spec.name and not config.section(S3Section).access_key_id


def _check_object_writes(config: Config, region: str) -> None:
    seen: dict[str, list[tuple[tuple[str, str], str]]] = {}
    for i, trig in enumerate(_triggers(config)):
        if trig["kind"] != "object_write" or not any(r["trigger"] == trig["name"] for r in _rules(config)):
            continue
        if config.storage.backend != AwsS3Spec.name:
            raise ConfigError(f"triggers[{i}]", f"an object-write trigger on {config.storage.backend} storage: only AWS S3 "
                              "notifies Lambda", "use storage.backend aws_s3 with the bucket in AWS")
        if config.section(S3Section).region != region:
            raise ConfigError("aws_lambda.region", f"'{region}' is not the bucket's region '{config.section(S3Section).region}': "
                              "S3 notifies only functions of its own region", "deploy the functions in the bucket's region")
        for _, suffix in trigger_instances(trig["name"], trig):
            here = (trig["prefix"] or "", suffix)
            for other, owner in seen.get(trig["bucket"], []):
                if pol.overlapping(here, other) and owner != trig["name"]:
                    raise ConfigError(f"triggers[{i}].prefix", f"its filter {here} overlaps trigger '{owner}''s {other} on bucket "
                                      f"'{trig['bucket']}': S3 refuses overlapping notification filters",
                                      "give the triggers disjoint prefixes or suffixes")
            seen.setdefault(trig["bucket"], []).append((here, trig["name"]))


def _role_steps(name: str, region: str, trust_file: str, policy_file: str) -> list[Step]:
    return [
        Step(what=f"role {name}", probe=_cli("iam", "get-role", "--role-name", name, region=region),
             update=_cli("iam", "update-assume-role-policy", "--role-name", name, "--policy-document", f"file://{trust_file}", region=region),
             create=_cli("iam", "create-role", "--role-name", name, "--assume-role-policy-document", f"file://{trust_file}", region=region)),
        Step(what=f"the least-privilege policy of role {name}",
             create=_cli("iam", "put-role-policy", "--role-name", name, "--policy-name", "ephemera", "--policy-document",
                         f"file://{policy_file}", region=region)),
        Step(what=f"role {name} visible", create=_cli("iam", "wait", "role-exists", "--role-name", name, region=region)),
    ]


def _function_steps(fn: Function, settings: AwsLambdaSection, role: str, zip_path: str, env_file: str, region: str) -> list[Step]:
    config_args = ["--role", role, "--runtime", settings.runtime, "--handler", HANDLER, "--timeout", str(settings.timeout),
                   "--memory-size", str(settings.memory), "--environment", f"file://{env_file}"]
    wait = Step(what=f"function {fn.name} ready", create=_cli("lambda", "wait", "function-updated-v2", "--function-name", fn.name, region=region))
    steps = [
        Step(what=f"function {fn.name} ({fn.entry}: runs {fn.action}; {settings.timeout}s, no function URL)",
             probe=_cli("lambda", "get-function", "--function-name", fn.name, region=region),
             update=_cli("lambda", "update-function-code", "--function-name", fn.name, "--zip-file", f"fileb://{zip_path}", region=region),
             create=_cli("lambda", "create-function", "--function-name", fn.name, "--zip-file", f"fileb://{zip_path}",
                         "--architectures", settings.architecture, *config_args, region=region)),
        wait,
        Step(what=f"configuration of {fn.name}", create=_cli("lambda", "update-function-configuration", "--function-name", fn.name,
                                                             *config_args, region=region)),
        wait,
    ]
    if fn.entry == "events":
        steps.append(Step(what=f"retries of {fn.name}'s events", create=_cli(
            "lambda", "put-function-event-invoke-config", "--function-name", fn.name, "--maximum-retry-attempts",
            str(settings.event_retries), "--maximum-event-age-in-seconds", str(settings.event_max_age), region=region)))
    return steps


def _env(fn: Function, secret: str, digest: str) -> str:
    variables = {"EPHEMERA_ACTION": fn.action, "EPHEMERA_ENTRY": fn.entry, "EPHEMERA_CONFIG_SECRET": secret,
                 "EPHEMERA_CONFIG_SHA256": digest, "EPHEMERA_HOME": LAMBDA_HOME}
    if fn.rule_params:
        variables["EPHEMERA_RULE_PARAMS"] = json.dumps(fn.rule_params, sort_keys=True, separators=(",", ":"))
    if len(json.dumps(variables).encode()) > MAX_ENV_BYTES:
        raise ConfigError("rules", f"the environment of {fn.name} would be over Lambda's {MAX_ENV_BYTES} bytes",
                          "keep the object-write rule's params small")
    return json.dumps({"Variables": variables}, indent=2, sort_keys=True)


def _schedule_input(trig: dict, rule_params: dict) -> str:
    data = {**rule_params, **trig["payload"], "ephemera_kind": "alarm", "ephemera_trigger": trig["name"],
            "ephemera_time": "<aws.scheduler.scheduled-time>", "ephemera_schedule_arn": "<aws.scheduler.schedule-arn>"}
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def aws_plan(config: Config, *, zip_path: str, secret_file: str, config_sha256: str, files_dir: str,
             now: datetime | None = None) -> AwsPlan:
    """Every step of the deploy, from the config (ConfigError for what cannot be deployed).
    ``secret_file`` holds the config; the plan's other files are returned, to be written
    into ``files_dir`` under the relative paths of :attr:`AwsPlan.files`."""
    settings = config.section(AwsLambdaSection)
    check_engine_and_files(config, "AWS Lambda")
    check_time_limit(config, "aws_lambda.timeout", settings.timeout)
    if not settings.account_id:
        raise ConfigError("aws_lambda.account_id", "missing", "set it to the 12-digit id `aws sts get-caller-identity --query Account` prints")
    account, region, prefix = Account(settings.account_id, settings.region), settings.region, settings.prefix
    triggers = {t["name"]: t for t in _triggers(config)}
    _check_object_writes(config, region)
    functions, served = _functions(config, prefix, triggers)
    secret = f"{prefix}-config"
    plan = AwsPlan(root=files_dir, functions=functions)
    plan.steps.append(Step(
        what=f"secret {secret} with the config (from a 0600 file)",
        probe=_cli("secretsmanager", "describe-secret", "--secret-id", secret, region=region),
        update=_cli("secretsmanager", "put-secret-value", "--secret-id", secret, "--secret-string", f"file://{secret_file}", region=region),
        create=_cli("secretsmanager", "create-secret", "--name", secret, "--secret-string", f"file://{secret_file}", region=region)))
    buckets = [config.state_bucket, config.output_bucket]
    vm_role = config.section(S3Section).vm_role_arn if config.storage.backend == AwsS3Spec.name else None
    trust = plan.put("iam/lambda-trust.json", json.dumps(pol.lambda_trust(), indent=2))
    for fn in functions:
        role = aws_name(f"{prefix}-fn-{fn.name.removeprefix(prefix + '-')}")
        policy = pol.function_policy(account, fn, secret=secret, buckets=buckets, storage_by_role=_storage_by_role(config), vm_role=vm_role)
        policy_file = plan.put(f"iam/{role}-policy.json", json.dumps(policy, indent=2))
        env_file = plan.put(f"lambda/{fn.name}-env.json", _env(fn, secret, config_sha256))
        plan.steps += _role_steps(role, region, trust, policy_file)
        plan.steps += _function_steps(fn, settings, pol.role_arn(account, role), zip_path, env_file, region)
    plan.steps += _schedule_steps(config, account, prefix, served, plan, now)
    plan.steps += _notification_steps(config, account, served, plan)
    return plan


def _schedule_steps(config: Config, account: Account, prefix: str, served: dict[str, str], plan: AwsPlan,
                    now: datetime | None) -> list[Step]:
    region, settings = account.region, config.section(AwsLambdaSection)
    schedules: list[tuple[str, str, list[str], str]] = []  # name, function, when-args, input
    for i, trig in enumerate(_triggers(config)):
        if trig["kind"] != "alarm":
            continue
        for rule in (r for r in _rules(config) if r["trigger"] == trig["name"]):
            path = f"triggers[{i}]"
            schedule = trig.get("schedule") or validate_alarm(path, trig)
            schedules.append((aws_name(rule["name"]), served[rule["name"]], schedule_args(path, schedule, now),
                              _schedule_input(trig, rule["params"])))
    if not any(rule["action"] == "reap" for rule in _rules(config)):
        reaper = {"name": f"{prefix}-reaper", "payload": {}}
        cron = validate_alarm("aws_lambda.reaper_cron", {"name": reaper["name"], "cron": settings.reaper_cron})
        schedules.append((aws_name(f"{prefix}-reaper"), aws_name(f"{prefix}-reap-events"),
                          schedule_args("aws_lambda.reaper_cron", cron, now), _schedule_input(reaper, {})))
    if not schedules:
        return []
    role = aws_name(f"{prefix}-scheduler")
    trust = plan.put("iam/scheduler-trust.json", json.dumps(pol.scheduler_trust(account), indent=2))
    policy = plan.put(f"iam/{role}-policy.json", json.dumps(pol.scheduler_policy(account, [s[1] for s in schedules]), indent=2))
    steps = _role_steps(role, region, trust, policy)
    group = _cli("scheduler", "get-schedule-group", "--name", prefix, region=region)
    steps.append(Step(what=f"schedule group {prefix}", probe=group, update=group,
                      create=_cli("scheduler", "create-schedule-group", "--name", prefix, region=region)))
    retry = {"MaximumRetryAttempts": settings.event_retries, "MaximumEventAgeInSeconds": settings.event_max_age}
    for name, function, when, data in schedules:
        target = plan.put(f"scheduler/{name}-target.json", json.dumps(
            {"Arn": pol.function_arn(account, function), "RoleArn": pol.role_arn(account, role), "Input": data, "RetryPolicy": retry}, indent=2))
        args = ["--name", name, "--group-name", prefix, *when, "--flexible-time-window", '{"Mode":"OFF"}',
                "--target", f"file://{target}", "--state", "ENABLED"]
        expression = when[when.index("--schedule-expression") + 1]
        steps.append(Step(what=f"schedule {name}: {expression} -> {function}",
                          probe=_cli("scheduler", "get-schedule", "--name", name, "--group-name", prefix, region=region),
                          update=_cli("scheduler", "update-schedule", *args, region=region),
                          create=_cli("scheduler", "create-schedule", *args, region=region)))
    return steps


def _notification_steps(config: Config, account: Account, served: dict[str, str], plan: AwsPlan) -> list[Step]:
    region = account.region
    per_bucket: dict[str, list[tuple[str, str, str, str]]] = {}
    permitted: set[tuple[str, str]] = set()
    steps: list[Step] = []
    for trig in _triggers(config):
        if trig["kind"] != "object_write":
            continue
        for rule in (r for r in _rules(config) if r["trigger"] == trig["name"]):
            function = served[rule["name"]]
            for j, (_, suffix) in enumerate(trigger_instances(trig["name"], trig)):
                per_bucket.setdefault(trig["bucket"], []).append((aws_name(f"{rule['name']}-{j + 1}"), function, trig["prefix"] or "", suffix))
            if (function, trig["bucket"]) in permitted:
                continue
            permitted.add((function, trig["bucket"]))
            sid = aws_name(f"s3-{trig['bucket']}")
            add = _cli("lambda", "add-permission", "--function-name", function, "--statement-id", sid, "--action", "lambda:InvokeFunction",
                       "--principal", "s3.amazonaws.com", "--source-arn", pol.bucket_arn(account, trig["bucket"]),
                       "--source-account", account.id, region=region)
            steps.append(Step(what=f"permission of S3 (bucket {trig['bucket']}, account {account.id}) to invoke {function} (replaced)",
                              probe=_cli("lambda", "remove-permission", "--function-name", function, "--statement-id", sid, region=region),
                              update=add, create=add))
    for bucket, filters in per_bucket.items():
        path = plan.put(f"s3/{bucket}-notification.json", json.dumps(pol.notification_configuration(account, filters), indent=2))
        steps.append(Step(what=f"notifications of bucket {bucket} (replaces its whole notification configuration)",
                          create=_cli("s3api", "put-bucket-notification-configuration", "--bucket", bucket,
                                      "--notification-configuration", f"file://{path}", region=region)))
    return steps
