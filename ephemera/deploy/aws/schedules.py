"""An alarm's schedule in EventBridge Scheduler's form.

EventBridge Scheduler's ``cron()`` has six required fields, ``minutes hours
day-of-month month day-of-week year``: months 1-12 or JAN-DEC, weekdays **1-7 with 1
= Sunday** (or SUN-SAT), years 1970-2199. "You can't use * in both the Day-of-month
and Day-of-week fields. If you use it in one, you must use ? in the other", and
"Cron expressions that lead to rates faster than 1 minute are not supported". The
expression is read in the schedule's ``ScheduleExpressionTimezone``; ``StartDate``
and ``EndDate`` bound it, and a one-off time is ``at(yyyy-mm-ddThh:mm:ss)``.

A config cron (croniter's meaning, :mod:`ephemera.deploy.schedules`) becomes: the
fields expanded and written again (weekdays shifted to Sunday = 1), ``?`` in the
day field left unrestricted, year ``*``. Refused, with the fix named: seconds other
than 0 (no sub-minute schedules), a cron restricting both the day of the month and
the weekday (croniter fires when *either* matches; Scheduler cannot say "or": split
it into two triggers), and the ``L``/``W``/``#`` forms the platforms do not share.
"""

from __future__ import annotations

from datetime import datetime, timezone

from ephemera.config.alarms import AlarmSchedule
from ephemera.deploy.schedules import DAY, HOUR, MINUTE, MONTH, SECOND, WEEKDAY, _fields, _render, alarm_dates
from ephemera.errors import ConfigError


HIGHEST = {MINUTE: 59, HOUR: 23, DAY: 31, MONTH: 12, WEEKDAY: 7}  # a field's last value (weekday: after the shift)


def _field(values: list, highest: int) -> str:
    """A field: '*', 'start/step' for a step that runs to the field's end, else runs and lists."""
    if values == ["*"]:
        return "*"
    v = sorted(set(values))
    step = v[1] - v[0] if len(v) >= 3 else 0
    if step > 1 and all(b - a == step for a, b in zip(v, v[1:])) and v[-1] + step > highest:
        return f"{v[0]}/{step}"
    return _render(v)


def scheduler_cron(path: str, cron: str) -> str:
    """``cron(...)`` for EventBridge Scheduler; ConfigError naming ``path`` for what it cannot express."""
    f = _fields(path, cron)
    if len(f) == 6 and f[SECOND] != [0]:
        raise ConfigError(
            path,
            f"'{cron}' fires at seconds {_render(f[SECOND])}; EventBridge Scheduler runs at most once a minute",
            "drop the seconds field",
        )
    days, weekdays = f[DAY], f[WEEKDAY]
    if days != ["*"] and weekdays != ["*"]:
        raise ConfigError(
            path,
            f"'{cron}' restricts both the day of the month and the weekday (it fires when either matches); "
            "EventBridge Scheduler needs '?' in one of them",
            "split it into two triggers, one per day field",
        )
    if weekdays == ["*"]:
        day, weekday = _field(days, HIGHEST[DAY]), "?"
    else:
        day, weekday = "?", _field([(d % 7) + 1 for d in weekdays], HIGHEST[WEEKDAY])  # croniter 0 (or 7) = Sunday -> 1
    return f"cron({_field(f[MINUTE], HIGHEST[MINUTE])} {_field(f[HOUR], HIGHEST[HOUR])} {day} {_field(f[MONTH], HIGHEST[MONTH])} {weekday} *)"


def _at(when: datetime) -> str:
    return "at(" + when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + ")"


def schedule_args(path: str, schedule: AlarmSchedule, now: datetime | None = None) -> list[str]:
    """The ``aws scheduler create-schedule`` arguments that say when: the expression, its
    time zone and the start and end dates (ConfigError for a past one-off time or stop date)."""
    dates = alarm_dates(path, schedule, now)
    if schedule.once is not None:
        return ["--schedule-expression", _at(schedule.once), "--schedule-expression-timezone", "UTC"]
    assert schedule.cron is not None
    cron_field = path if path.endswith("cron") else f"{path}.cron"
    args = ["--schedule-expression", scheduler_cron(cron_field, schedule.cron), "--schedule-expression-timezone", schedule.tz.key]
    if "start" in dates:
        args += ["--start-date", dates["start"]]
    if "stop" in dates:
        args += ["--end-date", dates["stop"]]
    return args
