"""The command plan of ``functions-create.sh``: Apache OpenWhisk (``wsk``), or a
remaining IBM Cloud Functions namespace (``ibmcloud fn``; the service is retired).

From one config it makes exist:

- the package (settings ``openwhisk.package``) with the config bound through
  ``--param-file`` (secrets never on a command line), beside its SHA-256
  (:mod:`ephemera.deploy.bound`);
- the actions apply/destroy/reap/status: the ``python:3.11`` zip, ``--main main``, an
  explicit ``--timeout`` and ``--memory``, ``--web false`` (not web actions: only
  the namespace's credentials invoke them) and ``--annotation final true``. OpenWhisk
  merges invocation parameters over the bound ones; ``final`` "makes all of the
  action parameters that are already defined immutable", including those "defined
  through its enclosing package" (the controller answers 400 to an invocation that
  names one), so an invocation or a trigger cannot swap the bound config;
- per rule, the trigger that fires it. Rules carry no parameters in OpenWhisk, so a
  config trigger bound by several rules gets one platform trigger per rule, and each
  carries its rule's ``params`` under the trigger's ``payload`` (the local runtime's
  precedence: rule params < trigger payload < event):

  - an alarm: ``/whisk.system/alarms/alarm`` (or ``once``) with the cron translated to
    the feed's form, the timezone always explicit, dates in UTC, and the params in
    ``trigger_payload``;
  - an object write, ``openwhisk.object_writes: scan`` (default): an alarm every
    ``openwhisk.scan_cron`` whose payload asks the action to scan for completion
    markers (:mod:`ephemera.actions.marker_scan`); Apache OpenWhisk has no
    object-storage feed. Only ``destroy`` rules can be served this way;
  - an object write, ``cos_feed``: IBM's ``/whisk.system/cos/changes`` per suffix, the
    feed's parameters with ``--feed-param`` and the params with ``--trigger-param``;

- a reaper alarm (``openwhisk.reaper_cron``) when no rule binds ``reap``;
- a rule per config rule.

Actions, packages and rules use ``update`` (create-or-update); feed triggers cannot be
updated, so an existing one is deleted and created again.
"""

from __future__ import annotations

import json
from datetime import datetime

from ephemera.config import Config, ConfigError
from ephemera.config.alarms import validate_alarm
from ephemera.config.sections import ACTIONS, ActionName
from ephemera.deploy.checks import check_engine_and_files, check_time_limit, rule_trigger_names
from ephemera.deploy.schedules import alarm_dates, openwhisk_cron
from ephemera.config.deploy_targets import OpenWhiskSection
from ephemera.deploy.steps import Step
from ephemera.storage import storage_spec

ALARM_FEED = "/whisk.system/alarms/alarm"
ONCE_FEED = "/whisk.system/alarms/once"
COS_FEED = "/whisk.system/cos/changes"
KIND = "python:3.11"
REAPER_TRIGGER = "ephemera-reaper"
SCAN_ACTIONS = ("destroy",)  # what a marker scan can fire: it finds completion markers only


def reaper_trigger(cron: str) -> dict:
    """The alarm trigger a deploy adds for the reaper when no rule binds ``reap``: ``cron`` in UTC."""
    return {
        "name": REAPER_TRIGGER,
        "kind": "alarm",
        "cron": cron,
        "once": None,
        "timezone": "UTC",
        "start_date": None,
        "stop_date": None,
        "payload": {},
    }


def cos_feed_endpoint(config: Config, field: str = "storage.backend") -> str:
    """The host the COS changes feed watches, as the storage backend states it (host only);
    ConfigError naming ``field`` (the object_write trigger) when the backend has no such feed."""
    endpoint = storage_spec(config.storage.backend).change_feed_endpoint(config)
    if endpoint is None:
        raise ConfigError(
            field,
            f"the {COS_FEED} feed cannot watch {config.storage.backend} storage",
            "use ibm_cos storage, or openwhisk.object_writes: scan",
        )
    return endpoint


def trigger_instances(name: str, trigger: dict) -> list[tuple[str, str]]:
    """(platform trigger name, suffix) per suffix of an object-write trigger: feeds take one suffix."""
    suffixes = trigger["suffix"] or [""]
    if len(suffixes) == 1:
        return [(name, suffixes[0])]
    return [(f"{name}-{i + 1}", s) for i, s in enumerate(suffixes)]


def _payload(rule: dict, trig: dict, **extra) -> str:
    return json.dumps(
        {**rule["params"], **trig["payload"], "ephemera_kind": "alarm", "ephemera_trigger": trig["name"], **extra}, sort_keys=True
    )


def _feed_trigger(cli: list[str], name: str, what: str, feed: str, params: list[str]) -> Step:
    return Step(
        what=what,
        probe=[*cli, "trigger", "get", name],
        update=[*cli, "trigger", "delete", name],
        create=[*cli, "trigger", "create", name, "--feed", feed, *params],
        recreate=True,
    )


def _alarm_step(cli: list[str], name: str, path: str, trig: dict, rule: dict, now: datetime | None) -> Step:
    schedule = trig.get("schedule") or validate_alarm(path, trig)
    dates = alarm_dates(path, schedule, now)
    if "once" in dates:
        feed, params = ONCE_FEED, ["--param", "date", dates["once"]]
        shown = f"once at {dates['once']}"
    else:
        cron = openwhisk_cron(f"{path}.cron", trig["cron"])
        feed, params = ALARM_FEED, ["--param", "cron", cron, "--param", "timezone", trig["timezone"] or "UTC"]
        shown = f"cron '{trig['cron']}' ({trig['timezone'] or 'UTC'}) as '{cron}'"
        if "start" in dates:
            params += ["--param", "startDate", dates["start"]]
        if "stop" in dates:
            params += ["--param", "stopDate", dates["stop"]]
    params += ["--param", "trigger_payload", _payload(rule, trig)]
    return _feed_trigger(cli, name, f"alarm trigger {name}: {shown}", feed, params)


def _scan_step(cli: list[str], name: str, trig: dict, rule: dict, cron: str) -> Step:
    scan = {"bucket": trig["bucket"], "prefix": trig["prefix"], "suffix": list(trig["suffix"])}
    params = [
        "--param",
        "cron",
        openwhisk_cron("openwhisk.scan_cron", cron),
        "--param",
        "timezone",
        "UTC",
        "--param",
        "trigger_payload",
        _payload(rule, trig, ephemera_scan=scan),
    ]
    return _feed_trigger(
        cli,
        name,
        f"marker scan trigger {name}: '{cron}' lists {trig['bucket']}/{trig['prefix']}* for markers",
        ALARM_FEED,
        params,
    )


def _cos_feed_steps(cli: list[str], config: Config, name: str, path: str, trig: dict, rule: dict) -> list[tuple[str, Step]]:
    steps = []
    bound = {**rule["params"], **trig["payload"], "ephemera_trigger": trig["name"]}
    for instance, suffix in trigger_instances(name, trig):
        feed = [
            "--feed-param",
            "bucket",
            trig["bucket"],
            "--feed-param",
            "endpoint",
            cos_feed_endpoint(config, path),
            "--feed-param",
            "event_types",
            "write",
        ]
        if trig["prefix"]:
            feed += ["--feed-param", "prefix", trig["prefix"]]
        if suffix:
            feed += ["--feed-param", "suffix", suffix]
        for key, value in sorted(bound.items()):
            feed += ["--trigger-param", key, json.dumps(value)]  # the CLI reads a value that is valid JSON as JSON
        what = f"COS changes trigger {instance} (bucket {trig['bucket']}, prefix '{trig['prefix']}', suffix '{suffix}')"
        steps.append((instance, _feed_trigger(cli, instance, what, COS_FEED, feed)))
    return steps


def openwhisk_plan(
    config: Config, *, zip_path: str, param_file: str, cli: tuple[str, ...] = ("wsk",), now: datetime | None = None
) -> list[Step]:
    """Every step of the deploy, from the config (ConfigError for what cannot be deployed)."""
    wsk = list(cli)  # the steps take the command as a list
    settings = config.section(OpenWhiskSection)
    check_engine_and_files(config, "OpenWhisk")
    check_time_limit(config, "openwhisk.timeout", settings.timeout)
    package = settings.package
    steps = [
        Step(
            what=f"package {package} with the bound config",
            create=[*wsk, "package", "update", package, "--param-file", param_file],
        )
    ]
    for action in ACTIONS:
        steps.append(
            Step(
                what=f"action {package}/{action} (not a web action, final; {settings.timeout}s, {settings.memory} MB)",
                create=[
                    *wsk,
                    "action",
                    "update",
                    f"{package}/{action}",
                    zip_path,
                    "--kind",
                    KIND,
                    "--main",
                    "main",
                    "--timeout",
                    str(settings.timeout * 1000),
                    "--memory",
                    str(settings.memory),
                    "--web",
                    "false",
                    "--annotation",
                    "final",
                    "true",
                ],
            )
        )
    triggers = {t.name: (i, t.to_dict()) for i, t in enumerate(config.triggers)}
    platform = rule_trigger_names(config)
    rules: list[tuple[str, str, str]] = []  # (platform rule, platform trigger, action)
    for r, rule in enumerate(r.to_dict() for r in config.rules):
        i, trig = triggers[rule["trigger"]]
        path, name = f"triggers[{i}]", platform[rule["name"]]
        if trig["kind"] == "alarm":
            steps.append(_alarm_step(wsk, name, path, trig, rule, now))
            rules.append((rule["name"], name, rule["action"]))
        elif settings.object_writes == "scan":
            if rule["action"] not in SCAN_ACTIONS:
                raise ConfigError(
                    f"rules[{r}].action",
                    f"'{rule['action']}' on object writes needs an object-storage feed, which "
                    "Apache OpenWhisk lacks; the marker scan serves destroy rules only",
                    "bind object_write triggers to destroy, or set openwhisk.object_writes: cos_feed (IBM Cloud Functions)",
                )
            steps.append(_scan_step(wsk, name, trig, rule, settings.scan_cron))
            rules.append((rule["name"], name, rule["action"]))
        else:
            instances = _cos_feed_steps(wsk, config, name, path, trig, rule)
            for j, (instance, step) in enumerate(instances):
                steps.append(step)
                rules.append((rule["name"] if len(instances) == 1 else f"{rule['name']}-{j + 1}", instance, rule["action"]))
    if not any(rule.action == ActionName.REAP for rule in config.rules):
        reaper = reaper_trigger(settings.reaper_cron)
        steps.append(_alarm_step(wsk, REAPER_TRIGGER, "openwhisk.reaper_cron", reaper, {"params": {}}, now))
        rules.append((f"{REAPER_TRIGGER}-reap", REAPER_TRIGGER, "reap"))
    for rule_name, trigger, action in rules:
        steps.append(
            Step(
                what=f"rule {rule_name}: {trigger} -> {package}/{action}",
                create=[*wsk, "rule", "update", rule_name, trigger, f"{package}/{action}"],
            )
        )
    return steps
