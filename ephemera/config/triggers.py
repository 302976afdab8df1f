"""Validation of the config's ``triggers`` and ``rules`` lists.

Each trigger is an alarm (cron or one-off time, see :mod:`ephemera.config.alarms`) or an
object_write watch on a bucket; each rule binds a trigger to an action. Errors are
:class:`ConfigError` naming the list entry, e.g. ``triggers[1].cron``.
:func:`ephemera.config.validate` calls these; the names are also importable from
:mod:`ephemera.config`.
"""

from __future__ import annotations

from typing import Any

from ephemera.config import alarms
from ephemera.config import ACTIONS, DICT, STR, TRIGGER_KINDS, Field, _bucket, _name, _validate_mapping
from ephemera.errors import ConfigError

TRIGGER_FIELDS: dict[str, Field] = {
    "name": Field(STR, None, required=True, check=_name),
    "kind": Field(STR, None, required=True, choices=TRIGGER_KINDS),
    "cron": Field(STR, None, help="5 fields, or 6 with seconds last, e.g. '0 2 * * *'"),
    "once": Field(STR, None, help="an ISO 8601 time at which the alarm fires once"),
    "timezone": Field(STR, "UTC"),
    "start_date": Field(STR, None),
    "stop_date": Field(STR, None),
    "bucket": Field(STR, None, check=_bucket),
    "prefix": Field(STR, "", check=lambda f, v: v.lstrip("/")),
    "suffix": Field((str, list), [], help="a suffix or a list of suffixes, e.g. ['_SUCCESS.json']"),
    "payload": Field(DICT, {}),
}

RULE_FIELDS: dict[str, Field] = {
    "name": Field(STR, None, check=_name),
    "trigger": Field(STR, None, required=True),
    "action": Field(STR, None, required=True, choices=ACTIONS),
    "params": Field(DICT, {}),
}


def validate_triggers(raw: Any, state_bucket: str) -> list[dict]:
    """The validated ``triggers`` list; an object_write trigger's bucket defaults to
    ``state_bucket``, an alarm trigger gets its parsed ``schedule``."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError("triggers", f"expected a list, got {type(raw).__name__}", "write '- name: ...' entries")
    triggers, seen = [], set()
    for i, item in enumerate(raw):
        path = f"triggers[{i}]"
        trig = _validate_mapping(path, item, TRIGGER_FIELDS)
        if trig["name"] in seen:
            raise ConfigError(f"{path}.name", f"duplicate trigger name '{trig['name']}'", "give each trigger its own name")
        seen.add(trig["name"])
        if trig["kind"] == "alarm":
            trig["schedule"] = alarms.validate_alarm(path, trig)
        else:
            for key in ("cron", "once", "start_date", "stop_date"):
                if trig[key] is not None:
                    raise ConfigError(f"{path}.{key}", "only alarm triggers take it", "remove it or set kind: alarm")
            trig["bucket"] = trig["bucket"] or state_bucket
            suffixes = [trig["suffix"]] if isinstance(trig["suffix"], str) else trig["suffix"]
            if not all(isinstance(s, str) and s for s in suffixes):
                raise ConfigError(f"{path}.suffix", "every suffix must be a non-empty string", TRIGGER_FIELDS["suffix"].help)
            trig["suffix"] = list(suffixes)
        triggers.append(trig)
    return triggers


def validate_rules(raw: Any, trigger_names: set[str]) -> list[dict]:
    """The validated ``rules`` list; each must name one of ``trigger_names``."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError("rules", f"expected a list, got {type(raw).__name__}", "write '- trigger: ...' entries")
    rules = []
    for i, item in enumerate(raw):
        path = f"rules[{i}]"
        rule = _validate_mapping(path, item, RULE_FIELDS)
        if rule["trigger"] not in trigger_names:
            known = ", ".join(sorted(trigger_names)) or "none defined"
            raise ConfigError(f"{path}.trigger", f"no trigger named '{rule['trigger']}'", f"known triggers: {known}")
        rule["name"] = rule["name"] or f"{rule['trigger']}-{rule['action']}"
        rules.append(rule)
    return rules
