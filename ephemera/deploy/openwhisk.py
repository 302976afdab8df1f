"""The command plan of ``functions-create.sh``: OpenWhisk (``wsk``) or ``ibmcloud fn``.

From one config it makes exist: the package (with the config bound through
``--param-file``: secrets never on a command line), the actions apply/destroy/reap/status
(``python:3.11`` zip), one trigger per alarm (``/whisk.system/alarms/alarm``, or
``/whisk.system/alarms/once``) whose ``trigger_payload`` names the trigger, one COS
``/whisk.system/cos/changes`` trigger per object-write suffix with prefix and suffix
filters, a reaper alarm when the config has none, and a rule per config rule. Actions,
packages and rules use ``update`` (create-or-update); feed triggers cannot be updated,
so an existing one is deleted and created again.
"""

from __future__ import annotations

import json

from ephemera.config import Config, ConfigError
from ephemera.deploy.package import ACTIONS
from ephemera.deploy.steps import Step
from ephemera.storage import storage_spec

ALARM_FEED = "/whisk.system/alarms/alarm"
ONCE_FEED = "/whisk.system/alarms/once"
COS_FEED = "/whisk.system/cos/changes"
REAPER_TRIGGER = "ephemera-reaper"
REAPER_CRON = "*/5 * * * *"


def cos_feed_endpoint(config: Config, field: str = "storage.backend") -> str:
    """The host the COS changes feed watches, as the storage backend states it (host only);
    ConfigError naming ``field`` (the object_write trigger) when the backend has no such feed."""
    endpoint = storage_spec(config["storage"]["backend"]).change_feed_endpoint(config)
    if endpoint is None:
        raise ConfigError(field, f"the {COS_FEED} feed cannot watch {config['storage']['backend']} storage",
                          "use ibm_cos storage, or deploy object_write triggers where that storage has events")
    return endpoint


def trigger_instances(trigger: dict) -> list[tuple[str, str]]:
    """(platform trigger name, suffix) per suffix of an object-write trigger: feeds take one suffix."""
    suffixes = trigger["suffix"] or [""]
    if len(suffixes) == 1:
        return [(trigger["name"], suffixes[0])]
    return [(f"{trigger['name']}-{i + 1}", s) for i, s in enumerate(suffixes)]


def _alarm_step(cli: list[str], trig: dict) -> Step:
    name = trig["name"]
    payload = {**trig["payload"], "ephemera_kind": "alarm", "ephemera_trigger": name}
    if trig["once"]:
        params = ["--param", "date", trig["once"]]
        feed = ONCE_FEED
    else:
        params = ["--param", "cron", trig["cron"]]
        feed = ALARM_FEED
        if trig["timezone"] and trig["timezone"] != "UTC":
            params += ["--param", "timezone", trig["timezone"]]
    if trig["start_date"]:
        params += ["--param", "startDate", trig["start_date"]]
    if trig["stop_date"]:
        params += ["--param", "stopDate", trig["stop_date"]]
    params += ["--param", "trigger_payload", json.dumps(payload, sort_keys=True)]
    return Step(
        what=f"alarm trigger {name}",
        probe=[*cli, "trigger", "get", name],
        update=[*cli, "trigger", "delete", name],
        create=[*cli, "trigger", "create", name, "--feed", feed, *params],
        recreate=True,
    )


def openwhisk_plan(config: Config, *, zip_path: str, param_file: str, cli: tuple[str, ...] = ("ibmcloud", "fn"),
                   package: str = "ephemera", memory_mb: int = 512) -> list[Step]:
    cli = list(cli)
    timeout_ms = str(min(config["timeouts"]["action"], 600) * 1000)
    steps = [Step(what=f"package {package} with the bound config", create=[*cli, "package", "update", package, "--param-file", param_file])]
    for action in ACTIONS:
        steps.append(Step(
            what=f"action {package}/{action}",
            create=[*cli, "action", "update", f"{package}/{action}", zip_path, "--kind", "python:3.11",
                    "--main", "main", "--timeout", timeout_ms, "--memory", str(memory_mb)],
        ))
    names: dict[str, list[str]] = {}
    for i, trig in enumerate(config["triggers"]):
        if trig["kind"] == "alarm":
            steps.append(_alarm_step(cli, trig))
            names[trig["name"]] = [trig["name"]]
            continue
        names[trig["name"]] = []
        for name, suffix in trigger_instances(trig):
            params = ["--param", "bucket", trig["bucket"], "--param", "endpoint", cos_feed_endpoint(config, f"triggers[{i}]"),
                      "--param", "event_types", "write"]
            if trig["prefix"]:
                params += ["--param", "prefix", trig["prefix"]]
            if suffix:
                params += ["--param", "suffix", suffix]
            steps.append(Step(
                what=f"COS changes trigger {name} (bucket {trig['bucket']}, prefix '{trig['prefix']}', suffix '{suffix}')",
                probe=[*cli, "trigger", "get", name],
                update=[*cli, "trigger", "delete", name],
                create=[*cli, "trigger", "create", name, "--feed", COS_FEED, *params],
                recreate=True,
            ))
            names[trig["name"]].append(name)
    rules = [(r["name"], r["trigger"], r["action"]) for r in config["rules"]]
    if not any(action == "reap" for _, _, action in rules):
        reaper = {"name": REAPER_TRIGGER, "kind": "alarm", "cron": REAPER_CRON, "once": None, "timezone": "UTC",
                  "start_date": None, "stop_date": None, "payload": {}}
        steps.append(_alarm_step(cli, reaper))
        names[REAPER_TRIGGER] = [REAPER_TRIGGER]
        rules.append((f"{REAPER_TRIGGER}-reap", REAPER_TRIGGER, "reap"))
    for rule_name, trigger, action in rules:
        instances = names[trigger]
        for i, platform_trigger in enumerate(instances):
            name = rule_name if len(instances) == 1 else f"{rule_name}-{i + 1}"
            steps.append(Step(what=f"rule {name}: {platform_trigger} -> {package}/{action}",
                              create=[*cli, "rule", "update", name, platform_trigger, f"{package}/{action}"]))
    return steps
