"""The command plan of ``ephemera deploy aws`` (the ``aws`` CLI), and the files it reads.

From one config (section ``aws_lambda``) the plan makes exist, in the account and region:

- the secret ``<prefix>-config`` (Secrets Manager) holding the config, from a 0600 file
  (``--secret-string file://...``: never on a command line);
- with the ``terraform`` engine (its state in S3), the container image of the functions
  that run Terraform and its ECR repository (:mod:`ephemera.deploy.aws.tf_functions`);
- per function a role ``<prefix>-fn-<function>`` (:mod:`ephemera.deploy.aws.policies`)
  and the function, from the Lambda zip (from the image for Terraform's functions), handler
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
state on the deploying machine (the ``terraform`` engine with local state), a time limit over ``timeouts.action``, no
``aws_lambda.account_id``, object-write triggers on storage that is not AWS S3 (or in
another region), and filters S3 would refuse as overlapping.

This module plans the secret, the roles and the functions; the schedules and the S3
notifications are :mod:`ephemera.deploy.aws.sources`, the shared building blocks
:mod:`ephemera.deploy.aws.commands`.
"""

from __future__ import annotations

import json
from datetime import datetime

from ephemera.config import Config, ConfigError
from ephemera import __version__
from ephemera.bundle.wheel import wheel_name
from ephemera.config.aws_lambda import AwsLambdaSection
from ephemera.deploy.aws.image import image_files, image_tag
from ephemera.engines import engine_spec
from ephemera.engines.terraform.config import TerraformSection
from ephemera.deploy.aws import policies as pol
from ephemera.deploy.aws.commands import AwsPlan, aws_name, cli, role_steps, rules, triggers_of
from ephemera.deploy.aws.policies import Account, Function
from ephemera.deploy.aws.sources import check_object_writes, notification_steps, schedule_steps
from ephemera.deploy.aws.tf_functions import check_terraform, image_function_steps, image_steps, uses_image
from ephemera.deploy.aws.tf_role import terraform_statements
from ephemera.deploy.checks import check_engine_and_files, check_time_limit
from ephemera.deploy.steps import Step
from ephemera.storage.aws_s3.config import S3Section
from ephemera.storage.aws_s3.spec import AwsS3Spec

__all__ = ["AwsPlan", "aws_name", "aws_plan"]

HANDLER = "ephemera.actions.lambda_entry.handler"
DIRECT_ACTIONS = ("apply", "destroy", "status", "reap")
MAX_ENV_BYTES = 4096  # Lambda: "the total size of all environment variables doesn't exceed 4 KB"
LAMBDA_HOME = "/tmp/ephemera"  # the config's home names the deploying machine; /tmp is a function's only writable folder


def _functions(config: Config, prefix: str, triggers: dict[str, dict]) -> tuple[list[Function], dict[str, str]]:
    """Every function, and rule name -> the events function serving it."""
    fns: dict[str, Function] = {}
    for action in DIRECT_ACTIONS:
        name = aws_name(f"{prefix}-{action}")
        fns[name] = Function(name, action, "direct")
    served: dict[str, str] = {}
    for rule in rules(config):
        own = triggers[rule["trigger"]]["kind"] == "object_write" and rule["params"]
        name = aws_name(f"{prefix}-{rule['name']}-events" if own else f"{prefix}-{rule['action']}-events")
        if name in fns and (fns[name].action != rule["action"] or fns[name].entry != "events"):
            raise ConfigError(
                "rules", f"rule '{rule['name']}' would need the function name '{name}', already taken", "rename the rule"
            )
        fns.setdefault(name, Function(name, rule["action"], "events", rule["params"] if own else {}))
        served[rule["name"]] = name
    if not any(rule["action"] == "reap" for rule in rules(config)):
        name = aws_name(f"{prefix}-reap-events")
        fns.setdefault(name, Function(name, "reap", "events"))
    return list(fns.values()), served


def _storage_by_role(config: Config) -> bool:
    """Whether the functions reach storage with their own role (AWS S3 without keys in the config)."""
    return config.storage.backend == AwsS3Spec.name and not config.section(S3Section).access_key_id


def _function_steps(fn: Function, settings: AwsLambdaSection, role: str, zip_path: str, env_file: str, region: str) -> list[Step]:
    config_args = [
        "--role",
        role,
        "--runtime",
        settings.runtime,
        "--handler",
        HANDLER,
        "--timeout",
        str(settings.timeout),
        "--memory-size",
        str(settings.memory),
        "--environment",
        f"file://{env_file}",
    ]
    wait = Step(
        what=f"function {fn.name} ready",
        create=cli("lambda", "wait", "function-updated-v2", "--function-name", fn.name, region=region),
    )
    steps = [
        Step(
            what=f"function {fn.name} ({fn.entry}: runs {fn.action}; {settings.timeout}s, no function URL)",
            probe=cli("lambda", "get-function", "--function-name", fn.name, region=region),
            update=cli(
                "lambda", "update-function-code", "--function-name", fn.name, "--zip-file", f"fileb://{zip_path}", region=region
            ),
            create=cli(
                "lambda",
                "create-function",
                "--function-name",
                fn.name,
                "--zip-file",
                f"fileb://{zip_path}",
                "--architectures",
                settings.architecture,
                *config_args,
                region=region,
            ),
        ),
        wait,
        Step(
            what=f"configuration of {fn.name}",
            create=cli("lambda", "update-function-configuration", "--function-name", fn.name, *config_args, region=region),
        ),
        wait,
    ]
    return steps


def _retries_step(fn: Function, settings: AwsLambdaSection, region: str) -> Step:
    return Step(
        what=f"retries of {fn.name}'s events",
        create=cli(
            "lambda",
            "put-function-event-invoke-config",
            "--function-name",
            fn.name,
            "--maximum-retry-attempts",
            str(settings.event_retries),
            "--maximum-event-age-in-seconds",
            str(settings.event_max_age),
            region=region,
        ),
    )


def _env(fn: Function, secret: str, digest: str) -> str:
    variables = {
        "EPHEMERA_ACTION": fn.action,
        "EPHEMERA_ENTRY": fn.entry,
        "EPHEMERA_CONFIG_SECRET": secret,
        "EPHEMERA_CONFIG_SHA256": digest,
        "EPHEMERA_HOME": LAMBDA_HOME,
    }
    if fn.rule_params:
        variables["EPHEMERA_RULE_PARAMS"] = json.dumps(fn.rule_params, sort_keys=True, separators=(",", ":"))
    if len(json.dumps(variables).encode()) > MAX_ENV_BYTES:
        raise ConfigError(
            "rules",
            f"the environment of {fn.name} would be over Lambda's {MAX_ENV_BYTES} bytes",
            "keep the object-write rule's params small",
        )
    return json.dumps({"Variables": variables}, indent=2, sort_keys=True)


def aws_plan(
    config: Config,
    *,
    zip_path: str,
    secret_file: str,
    config_sha256: str,
    files_dir: str,
    now: datetime | None = None,
    extra_requirements: tuple[str, ...] = (),
) -> AwsPlan:
    """Every step of the deploy, from the config (ConfigError for what cannot be deployed).
    ``secret_file`` holds the config; the plan's other files are returned, to be written
    into ``files_dir`` under the relative paths of :attr:`AwsPlan.files` (with the
    ``terraform`` engine, the image's build context ``image/``, whose ``wheels/`` the
    caller fills: Ephemera's wheel and the wheels of ``extra_requirements``)."""
    settings = config.section(AwsLambdaSection)
    check_engine_and_files(config, "AWS Lambda", state_in_bucket_ok=True)
    if engine_spec(config.engine.backend).state_on_host:  # the Terraform functions' image carries the engine's tools
        check_terraform(config)
    check_time_limit(config, "aws_lambda.timeout", settings.timeout)
    if not settings.account_id:
        raise ConfigError(
            "aws_lambda.account_id", "missing", "set it to the 12-digit id `aws sts get-caller-identity --query Account` prints"
        )
    account, region, prefix = Account(settings.account_id, settings.region), settings.region, settings.prefix
    triggers = {t["name"]: t for t in triggers_of(config)}
    check_object_writes(config, region)
    functions, served = _functions(config, prefix, triggers)
    secret = f"{prefix}-config"
    plan = AwsPlan(root=files_dir, functions=functions)
    plan.steps.append(
        Step(
            what=f"secret {secret} with the config (from a 0600 file)",
            probe=cli("secretsmanager", "describe-secret", "--secret-id", secret, region=region),
            update=cli(
                "secretsmanager",
                "put-secret-value",
                "--secret-id",
                secret,
                "--secret-string",
                f"file://{secret_file}",
                region=region,
            ),
            create=cli(
                "secretsmanager", "create-secret", "--name", secret, "--secret-string", f"file://{secret_file}", region=region
            ),
        )
    )
    buckets = [config.state_bucket, config.output_bucket]
    vm_role = config.section(S3Section).vm_role_arn if config.storage.backend == AwsS3Spec.name else None
    trust = plan.put("iam/lambda-trust.json", json.dumps(pol.lambda_trust(), indent=2))
    imaged = [fn.name for fn in functions if uses_image(config, fn)]
    uri = ""
    if imaged:
        files = {f"image/{name}": text for name, text in image_files(wheel_name(), extra_requirements).items()}
        for relative, text in files.items():
            plan.put(relative, text)
        plan.image_context = f"{files_dir.rstrip('/')}/image"
        built, uri = image_steps(plan, account, prefix, plan.image_context, image_tag(files, __version__), imaged)
        plan.steps += built
    for fn in functions:
        role = aws_name(f"{prefix}-fn-{fn.name.removeprefix(prefix + '-')}")
        policy = pol.function_policy(
            account, fn, secret=secret, buckets=buckets, storage_by_role=_storage_by_role(config), vm_role=vm_role
        )
        if fn.name in imaged:
            state = config.section(TerraformSection).state
            policy["Statement"] += terraform_statements(account, str(state.bucket), state.prefix)
        policy_file = plan.put(f"iam/{role}-policy.json", json.dumps(policy, indent=2))
        env_file = plan.put(f"lambda/{fn.name}-env.json", _env(fn, secret, config_sha256))
        plan.steps += role_steps(role, region, trust, policy_file)
        if fn.name in imaged:
            plan.steps += image_function_steps(fn, settings, pol.role_arn(account, role), uri, env_file, region)
        else:
            plan.steps += _function_steps(fn, settings, pol.role_arn(account, role), zip_path, env_file, region)
        if fn.entry == "events":
            plan.steps.append(_retries_step(fn, settings, region))
    plan.steps += schedule_steps(config, account, prefix, served, plan, now)
    plan.steps += notification_steps(config, account, served, plan)
    return plan
