"""One meaning per schedule: an alarm's cron and dates in each platform's own form.

A config cron has 5 fields ``minute hour day-of-month month day-of-week`` or 6 with
seconds *last* (croniter's order), months 1-12 and weekdays 0-7 (0 and 7 are Sunday),
read in the trigger's timezone; a day-of-month and a weekday both restricted match
when either does. ``once``, ``start_date`` and ``stop_date`` without an offset are
read in the trigger's timezone. The platforms differ:

- **OpenWhisk alarm feed** (``/whisk.system/alarms``, npm ``cron`` 1.8.2): 5 fields,
  or 6 with seconds *first*; months **0-11** and weekdays 0-6 (7 is refused); names
  ``jan``-``dec`` and ``sun``-``sat`` are aliases of those numbers; either restricted
  day field matching is enough (as in the config). Dates are parsed by JavaScript
  ``new Date()``, which reads an ISO time without an offset as the provider's local
  time, and must lie in the future.
- **Code Engine cron subscription** (a Knative PingSource, robfig/cron's standard
  parser): exactly 5 fields, no seconds, months 1-12, Sunday 0 or 7, and no start,
  stop or one-off date at all.

So the deploy expands each field to the values it matches and writes them again in the
platform's numbering (months as names for OpenWhisk, so no number is read one month
off), sends dates as UTC with an explicit ``Z``, drops a start date already past, and
refuses what a platform cannot express: seconds or a one-off time on Code Engine,
``L``/``#`` day forms anywhere, a stop date or one-off time already past. Code Engine
has no window of its own, so its start and stop dates travel in the event and the
entry point ignores fires outside them (:mod:`ephemera.actions.entry`).
"""

from __future__ import annotations

from datetime import datetime, timezone

from croniter import croniter

from ephemera.config.alarms import AlarmSchedule
from ephemera.errors import ConfigError
from ephemera.timeutil import now_utc

MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
# field positions in croniter's expansion: minute, hour, day, month, weekday[, second]
MINUTE, HOUR, DAY, MONTH, WEEKDAY, SECOND = range(6)


def _fields(path: str, cron: str) -> list[list]:
    expanded, nth = croniter.expand(cron)
    if nth or any(not isinstance(v, int) and v != "*" for field in expanded for v in field):
        raise ConfigError(
            path,
            f"'{cron}' uses a day form (L, W or #) the alarm platforms do not share",
            "use plain numbers, ranges, lists and steps",
        )
    return expanded


def _render(values: list, names: tuple[str, ...] | None = None, offset: int = 0) -> str:
    """A field from its expanded values: '*', or runs of values as 'a-b' joined by ','."""
    if values == ["*"]:
        return "*"
    runs: list[list[int]] = []
    for v in sorted(set(values)):
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])

    def one(v: int) -> str:
        return names[v - offset] if names else str(v - offset)

    return ",".join(one(a) if a == b else f"{one(a)}-{one(b)}" for a, b in runs)


def openwhisk_cron(path: str, cron: str) -> str:
    """The cron for the OpenWhisk alarm feed: seconds first, months as names, weekdays 0-6."""
    f = _fields(path, cron)
    five = [_render(f[MINUTE]), _render(f[HOUR]), _render(f[DAY]), _render(f[MONTH], MONTH_NAMES, offset=1), _render(f[WEEKDAY])]
    return " ".join(([_render(f[SECOND])] if len(f) == 6 else []) + five)


def code_engine_cron(path: str, cron: str) -> str:
    """The cron for a Code Engine cron subscription: 5 standard fields; ConfigError if it needs seconds."""
    f = _fields(path, cron)
    if len(f) == 6 and f[SECOND] != [0]:
        raise ConfigError(
            path,
            f"'{cron}' fires at seconds {_render(f[SECOND])}; Code Engine cron subscriptions take "
            "5 fields (a minute at the finest)",
            "drop the seconds field, or deploy this trigger elsewhere",
        )
    return " ".join(_render(f[i]) for i in (MINUTE, HOUR, DAY, MONTH, WEEKDAY))


def utc_text(when: datetime) -> str:
    """An ISO 8601 UTC time with an explicit 'Z' (milliseconds: what JavaScript parses)."""
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alarm_dates(path: str, schedule: AlarmSchedule, now: datetime | None = None) -> dict[str, str]:
    """The schedule's dates to deploy, in UTC: ``once``, ``start`` (only while still ahead)
    and ``stop``; ConfigError for a one-off time or stop date already past, or a schedule
    that never fires again."""
    now = now or now_utc()
    dates: dict[str, str] = {}
    if schedule.once is not None:
        if schedule.once <= now:
            raise ConfigError(f"{path}.once", f"{utc_text(schedule.once)} has passed", "set a future time, or remove the trigger")
        dates["once"] = utc_text(schedule.once)
    if schedule.start is not None and schedule.start > now:
        dates["start"] = utc_text(schedule.start)
    if schedule.stop is not None:
        if schedule.stop <= now:
            raise ConfigError(
                f"{path}.stop_date",
                f"{utc_text(schedule.stop)} has passed: the alarm never fires again",
                "set a later stop_date, or remove the trigger",
            )
        dates["stop"] = utc_text(schedule.stop)
    if schedule.next_after(now) is None:
        raise ConfigError(f"{path}.cron", "the alarm never fires again before its stop_date", "fix the schedule or the stop_date")
    return dates
