"""Checks of the config's ``triggers`` and ``rules`` lists that span an entry or the list.

The fields of each entry are typed and checked by their models
(:class:`~ephemera.config.sections.TriggerEntry`, :class:`~ephemera.config.sections.RuleEntry`);
here: each alarm's schedule (cron or one-off time, see :mod:`ephemera.config.alarms`),
fields only alarms take, unique trigger and rule names, the default bucket of
object_write triggers, and rules naming known triggers. Errors are :class:`ConfigError` naming the
list entry, e.g. ``triggers[1].cron``.
"""

from __future__ import annotations

from ephemera.config import alarms
from ephemera.config.sections import RuleEntry, TriggerEntry, TriggerKind
from ephemera.errors import ConfigError

ALARM_ONLY = ("cron", "once", "start_date", "stop_date")


def validate_triggers(triggers: list[TriggerEntry], state_bucket: str) -> list[TriggerEntry]:
    """The ``triggers`` list completed in place: an object_write trigger's bucket defaults to
    ``state_bucket``, an alarm trigger gets its parsed ``schedule``."""
    seen = set()
    for i, trig in enumerate(triggers):
        path = f"triggers[{i}]"
        if trig.name in seen:
            raise ConfigError(f"{path}.name", f"duplicate trigger name '{trig.name}'", "give each trigger its own name")
        seen.add(trig.name)
        if trig.kind == TriggerKind.ALARM:
            trig.set_schedule(alarms.validate_alarm(path, trig.model_dump()))
            continue
        for key in ALARM_ONLY:
            if getattr(trig, key) is not None:
                raise ConfigError(f"{path}.{key}", "only alarm triggers take it", "remove it or set kind: alarm")
        trig.bucket = trig.bucket or state_bucket
    return triggers


def validate_rules(rules: list[RuleEntry], trigger_names: set[str]) -> list[RuleEntry]:
    """The ``rules`` list completed in place with default names; each must name one of ``trigger_names``."""
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        if rule.trigger not in trigger_names:
            known = ", ".join(sorted(trigger_names)) or "none defined"
            raise ConfigError(f"rules[{i}].trigger", f"no trigger named '{rule.trigger}'", f"known triggers: {known}")
        rule.name = rule.name or f"{rule.trigger}-{rule.action.value}"
        if rule.name in seen:  # a rule name names platform rules and subscriptions
            raise ConfigError(f"rules[{i}].name", f"duplicate rule name '{rule.name}'", "give each rule its own name")
        seen.add(rule.name)
    return rules
