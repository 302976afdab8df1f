"""The command plan of ``ephemera deploy code-engine``.

IBM Cloud Functions reached end of life in October 2024; Code Engine is the IBM target.
From one config (settings ``code_engine``) the plan makes exist, in the project:

- the ``ephemera-config`` secret: the config as ``EPHEMERA_CONFIG_JSON``, created
  ``--from-env-file`` (never on a command line);
- the ``ephemera-invoke`` secret: the deployment's invoke token as
  ``EPHEMERA_INVOKE_TOKEN`` (:mod:`ephemera.deploy.invoke_token`), also
  ``--from-env-file``; bound to the functions only (jobs are not reached over HTTP);
- the functions ``ephemera-apply``, ``ephemera-reap`` and ``ephemera-status``, built
  from the source bundle on ``code_engine.runtime`` (``python-3.13`` by default; a
  runtime past its end of life is refused), ``--visibility private`` (or ``project``:
  never the CLI's default ``public``), ``--maxexecutiontime`` = ``code_engine.function_timeout``
  (at most 120 s), and the action fixed by the ``EPHEMERA_ACTION`` variable. Visibility
  is not authentication (a private function is reachable from the project's components
  and VPE callers): each function refuses a request without the invoke token. They
  serve remote invocations (``ephemera invoke --url``) only;
- the jobs every subscription starts: ``ephemera-destroy`` and one per other action a
  rule binds (``ephemera-<action>-job``), with ``--maxexecutiontime`` and
  ``--retrylimit``; an object-write rule with ``params`` gets a job of its own that
  carries them (``EPHEMERA_RULE_PARAMS``: a COS event carries none);
- a cron subscription per alarm rule, ``--destination-type job`` (5-field cron,
  explicit time zone; the rule's params, the trigger's payload and the start/stop
  window in its JSON ``--data``, which anyone who can read the project's
  subscriptions can read: it carries no credential), plus a reaper one
  (``code_engine.reaper_cron``) when no rule binds ``reap``; a one-off alarm is
  refused (cron subscriptions cannot fire once);
- a COS subscription per object-write rule and suffix, with prefix and suffix filters.

Each is probed with ``get`` and updated or created, so the plan can run again after
any config change.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path

from ephemera.config import Config, ConfigError
from ephemera.config.alarms import validate_alarm
from ephemera.config.sections import ActionName
from ephemera.deploy.checks import check_engine_and_files, check_time_limit
from ephemera.deploy.invoke_token import SECRET as INVOKE_SECRET
from ephemera.deploy.openwhisk import REAPER_TRIGGER, reaper_trigger, trigger_instances
from ephemera.deploy.schedules import alarm_dates, code_engine_cron, utc_text
from ephemera.config.deploy_targets import CodeEngineSection
from ephemera.deploy.steps import Step
from ephemera.timeutil import now_utc

CE = ["ibmcloud", "ce"]
SECRET = "ephemera-config"
FUNCTION_ACTIONS = ("apply", "reap", "status")
MAX_DATA_BYTES = 4096  # Code Engine limits: cron subscription "Size of data | 4096 bytes"
# Code Engine's Python function runtimes: (deprecated from, end of life), per its runtime lifecycle page
RUNTIME_LIFECYCLE = {
    "python-3.11": (date(2025, 10, 31), date(2026, 10, 31)),
    "python-3.13": (date(2026, 10, 1), date(2027, 4, 30)),
}


def ce_name(name: str) -> str:
    """A Code Engine resource name: lowercase letters, digits and '-'."""
    return re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")[:63]


def function_name(action: str) -> str:
    return f"ephemera-{action}"


def job_name(action: str, rule: str | None = None) -> str:
    """The job of an action (shared by the rules without params), or of one rule with params."""
    if rule is not None:
        return ce_name(f"ephemera-{rule}-job")
    return f"ephemera-{action}" if action == "destroy" else f"ephemera-{action}-job"


def check_runtime(runtime: str, today: date | None = None) -> str | None:
    """ConfigError for a runtime past its end of life; a warning while it is deprecated."""
    today = today or now_utc().date()
    deprecated, end = RUNTIME_LIFECYCLE.get(runtime, (None, None))
    if end is not None and today >= end:
        raise ConfigError(
            "code_engine.runtime",
            f"{runtime} reached its end of life on {end.isoformat()}: functions on it stop working",
            "use a current runtime, e.g. python-3.13",
        )
    if deprecated is not None and today >= deprecated:
        return (
            f"{runtime} is deprecated since {deprecated.isoformat()} (end of life {end.isoformat() if end else 'not announced'})"
        )
    return None


def _upsert(kind: list[str], name: str, what: str, create_args: list[str], update_args: list[str]) -> Step:
    return Step(
        what=what,
        probe=[*CE, *kind, "get", "--name", name],
        update=[*CE, *kind, "update", "--name", name, *update_args],
        create=[*CE, *kind, "create", "--name", name, *create_args],
    )


def _env(action: str, timeout: int, rule_params: dict | None = None, *, invoke_token: bool = False) -> list[str]:
    env = ["--env", f"EPHEMERA_ACTION={action}", "--env", f"EPHEMERA_ACTION_TIMEOUT={timeout}"]
    if rule_params:
        env += ["--env", "EPHEMERA_RULE_PARAMS=" + json.dumps(rule_params, sort_keys=True, separators=(",", ":"))]
    secrets = ["--env-from-secret", SECRET]
    if invoke_token:
        secrets += ["--env-from-secret", INVOKE_SECRET]
    return [*env, *secrets]


def invoke_env_file_for(env_file: str) -> str:
    """The env file of the ``ephemera-invoke`` secret: beside the config's."""
    return str(Path(env_file).with_name(f"{INVOKE_SECRET}.env"))


def _cron_data(path: str, trig: dict, rule: dict, now: datetime | None) -> str:
    schedule = trig.get("schedule") or validate_alarm(path, trig)
    if schedule.once is not None:
        raise ConfigError(
            f"{path}.once",
            "Code Engine cron subscriptions cannot fire once",
            "use a cron schedule, or invoke the function by hand",
        )
    dates = alarm_dates(path, schedule, now)
    data = {**rule["params"], **trig["payload"], "ephemera_kind": "alarm", "ephemera_trigger": trig["name"]}
    if schedule.start is not None:
        data["ephemera_not_before"] = utc_text(schedule.start)
    if "stop" in dates:
        data["ephemera_not_after"] = dates["stop"]
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    if len(text.encode()) > MAX_DATA_BYTES:
        raise ConfigError(
            f"{path}.payload",
            f"the cron subscription's data would be {len(text.encode())} bytes, over Code Engine's {MAX_DATA_BYTES}",
            "keep the trigger payload and rule params small",
        )
    return text


def code_engine_plan(
    config: Config,
    *,
    bundle_dir: str,
    env_file: str,
    invoke_env_file: str | None = None,
    project: str | None = None,
    now: datetime | None = None,
) -> list[Step]:
    """Every step of the deploy, from the config (ConfigError for what cannot be deployed).
    ``env_file`` holds the config, ``invoke_env_file`` (default: beside it) the invoke token."""
    settings = config.section(CodeEngineSection)
    check_engine_and_files(config, "Code Engine")
    check_time_limit(config, "code_engine.function_timeout", settings.function_timeout)
    check_runtime(settings.runtime, (now or now_utc()).date())
    project = project or settings.project
    fn_timeout, job_timeout = settings.function_timeout, settings.job_timeout
    steps = [Step(what=f"select project {project}", create=[*CE, "project", "select", "--name", project])]
    steps.append(
        _upsert(
            ["secret"], SECRET, f"secret {SECRET} with the config", ["--from-env-file", env_file], ["--from-env-file", env_file]
        )
    )
    invoke_env_file = invoke_env_file or invoke_env_file_for(env_file)
    steps.append(
        _upsert(
            ["secret"],
            INVOKE_SECRET,
            f"secret {INVOKE_SECRET} with the functions' invoke token",
            ["--from-env-file", invoke_env_file],
            ["--from-env-file", invoke_env_file],
        )
    )
    fn_args = [
        "--runtime",
        settings.runtime,
        "--build-source",
        bundle_dir,
        "--visibility",
        settings.visibility,
        "--maxexecutiontime",
        str(fn_timeout),
    ]
    for action in FUNCTION_ACTIONS:
        args = [*fn_args, *_env(action, fn_timeout, invoke_token=True)]
        steps.append(
            _upsert(
                ["fn"],
                function_name(action),
                f"function {function_name(action)} ({settings.visibility}, "
                f"{settings.runtime}, {fn_timeout}s; invoke token required)",
                args,
                args,
            )
        )
    triggers = {t.name: (i, t.to_dict()) for i, t in enumerate(config.triggers)}
    jobs: dict[str, tuple[str, dict]] = {job_name("destroy"): ("destroy", {})}
    for rule in (r.to_dict() for r in config.rules):
        trig = triggers[rule["trigger"]][1]
        if trig["kind"] == "object_write":  # a COS event carries no params: the job does (rule params < trigger payload)
            params = {**rule["params"], **trig["payload"]}
            jobs.setdefault(job_name(rule["action"], rule["name"] if params else None), (rule["action"], params))
        else:  # a cron's data carries the rule's params
            jobs.setdefault(job_name(rule["action"]), (rule["action"], {}))
    if not any(rule.action == ActionName.REAP for rule in config.rules):
        jobs.setdefault(job_name("reap"), ("reap", {}))
    job_args = [
        "--build-source",
        bundle_dir,
        "--build-strategy",
        "dockerfile",
        "--maxexecutiontime",
        str(job_timeout),
        "--retrylimit",
        str(settings.job_retries),
    ]
    for name, (action, params) in jobs.items():
        args = [*job_args, *_env(action, job_timeout, params)]
        steps.append(
            _upsert(
                ["job"],
                name,
                f"job {name} (runs {action}; started by subscriptions; {job_timeout}s, {settings.job_retries} retries)",
                args,
                args,
            )
        )
    rules: list[tuple[dict, int | None, dict]] = [(rule.to_dict(), *triggers[rule.trigger]) for rule in config.rules]
    if not any(rule.action == ActionName.REAP for rule in config.rules):
        reaper = reaper_trigger(settings.reaper_cron)
        rules.append(
            ({"name": f"{REAPER_TRIGGER}-reap", "trigger": REAPER_TRIGGER, "action": "reap", "params": {}}, None, reaper)
        )
    for rule, i, trig in rules:
        path = f"triggers[{i}]" if i is not None else "code_engine.reaper_cron"
        action = rule["action"]
        if trig["kind"] == "alarm":
            dest = ["--destination", job_name(action), "--destination-type", "job"]  # never a function: see the module doc
            data = _cron_data(path, trig, rule, now)  # refuses a one-off alarm first
            cron = code_engine_cron(f"{path}.cron" if i is not None else path, trig["cron"])
            args = [
                *dest,
                "--schedule",
                cron,
                "--time-zone",
                trig["timezone"] or "UTC",
                "--data",
                data,
                "--content-type",
                "application/json",
            ]
            steps.append(
                _upsert(
                    ["sub", "cron"],
                    ce_name(rule["name"]),
                    f"cron subscription {rule['name']}: '{cron}' ({trig['timezone'] or 'UTC'}) -> {action}",
                    args,
                    args,
                )
            )
            continue
        dest = ["--destination", job_name(action, rule["name"] if rule["params"] else None), "--destination-type", "job"]
        for j, (name, suffix) in enumerate(trigger_instances(trig["name"], trig)):
            sub = ce_name(rule["name"] if name == trig["name"] else f"{rule['name']}-{j + 1}")
            filters = (["--prefix", trig["prefix"]] if trig["prefix"] else []) + (["--suffix", suffix] if suffix else [])
            steps.append(
                _upsert(
                    ["sub", "cos"],
                    sub,
                    f"COS subscription {sub}: writes to {trig['bucket']}/{trig['prefix']}*{suffix} -> {action}",
                    [*dest, "--bucket", trig["bucket"], "--event-type", "write", *filters],
                    [*dest, "--event-type", "write", *filters],
                )
            )
    return steps
