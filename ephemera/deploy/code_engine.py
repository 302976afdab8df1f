"""The command plan of ``ephemera deploy code-engine``.

IBM Cloud Functions reached end of life in October 2024; Code Engine is the IBM target.
The plan makes exist, in the selected project: the ``ephemera-config`` secret (the
config as ``EPHEMERA_CONFIG_JSON``, created ``--from-env-file``: never on a command
line), the functions ``ephemera-apply``, ``ephemera-reap`` and ``ephemera-status``
(``python-3.11``, built from the source bundle), a job per action that object writes
start (``ephemera-destroy``: Code Engine COS subscriptions can target apps and jobs,
not functions), a cron subscription per alarm trigger (plus a reaper one when the
config has none), and a COS subscription per object-write trigger and suffix, with
prefix and suffix filters. Each is probed with ``get`` and updated or created.
"""

from __future__ import annotations

import json
import re

from ephemera.config import Config, ConfigError
from ephemera.deploy.openwhisk import REAPER_CRON, REAPER_TRIGGER, trigger_instances
from ephemera.deploy.steps import Step

CE = ["ibmcloud", "ce"]
SECRET = "ephemera-config"
FUNCTION_ACTIONS = ("apply", "reap", "status")


def ce_name(name: str) -> str:
    """A Code Engine resource name: lowercase letters, digits and '-'."""
    return re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")[:63]


def function_name(action: str) -> str:
    return f"ephemera-{action}"


def job_name(action: str) -> str:
    return f"ephemera-{action}" if action == "destroy" else f"ephemera-{action}-job"


def _upsert(kind: list[str], name: str, what: str, create_args: list[str], update_args: list[str]) -> Step:
    return Step(what=what, probe=[*CE, *kind, "get", "--name", name],
                update=[*CE, *kind, "update", "--name", name, *update_args],
                create=[*CE, *kind, "create", "--name", name, *create_args])


def code_engine_plan(config: Config, *, project: str, bundle_dir: str, env_file: str) -> list[Step]:
    steps = [Step(what=f"select project {project}", create=[*CE, "project", "select", "--name", project])]
    steps.append(_upsert(["secret"], SECRET, f"secret {SECRET} with the config", ["--from-env-file", env_file], ["--from-env-file", env_file]))
    for action in FUNCTION_ACTIONS:
        env = ["--env", f"EPHEMERA_ACTION={action}", "--env-from-secret", SECRET]
        steps.append(_upsert(["fn"], function_name(action), f"function {function_name(action)}",
                             ["--runtime", "python-3.11", "--build-source", bundle_dir, *env],
                             ["--build-source", bundle_dir, *env]))
    rules = [(r["name"], r["trigger"], r["action"]) for r in config["rules"]]
    triggers = {t["name"]: t for t in config["triggers"]}
    job_actions = sorted({"destroy"} | {a for _, t, a in rules if triggers[t]["kind"] == "object_write"})
    for action in job_actions:
        env = ["--env", f"EPHEMERA_ACTION={action}", "--env-from-secret", SECRET]
        steps.append(_upsert(["job"], job_name(action), f"job {job_name(action)} (started by COS subscriptions)",
                             ["--build-source", bundle_dir, "--build-strategy", "dockerfile", *env],
                             ["--build-source", bundle_dir, "--build-strategy", "dockerfile", *env]))
    if not any(a == "reap" for _, _, a in rules):
        triggers[REAPER_TRIGGER] = {"name": REAPER_TRIGGER, "kind": "alarm", "cron": REAPER_CRON, "once": None,
                                    "timezone": "UTC", "payload": {}}
        rules.append((f"{REAPER_TRIGGER}-reap", REAPER_TRIGGER, "reap"))
    for i, (rule_name, trigger_name, action) in enumerate(rules):
        trig = triggers[trigger_name]
        if trig["kind"] == "alarm":
            if trig["once"]:
                raise ConfigError(f"triggers.{trigger_name}.once", "Code Engine cron subscriptions cannot fire once",
                                  "use a cron schedule, or invoke the function by hand")
            if action in FUNCTION_ACTIONS:
                dest = ["--destination", function_name(action), "--destination-type", "function"]
            else:
                dest = ["--destination", job_name(action), "--destination-type", "job"]
            data = json.dumps({**trig["payload"], "ephemera_kind": "alarm", "ephemera_trigger": trigger_name}, sort_keys=True)
            args = [*dest, "--schedule", trig["cron"], "--time-zone", trig["timezone"] or "UTC",
                    "--data", data, "--content-type", "application/json"]
            steps.append(_upsert(["sub", "cron"], ce_name(rule_name), f"cron subscription {rule_name}: {trig['cron']} -> {action}", args, args))
            continue
        for j, (name, suffix) in enumerate(trigger_instances(trig)):
            sub = ce_name(rule_name if name == trig["name"] else f"{rule_name}-{j + 1}")
            filters = (["--prefix", trig["prefix"]] if trig["prefix"] else []) + (["--suffix", suffix] if suffix else [])
            dest = ["--destination", job_name(action), "--destination-type", "job"]
            steps.append(_upsert(["sub", "cos"], sub, f"COS subscription {sub}: writes to {trig['bucket']}/{trig['prefix']}*{suffix} -> {action}",
                                 [*dest, "--bucket", trig["bucket"], "--event-type", "write", *filters],
                                 [*dest, "--event-type", "write", *filters]))
    return steps
