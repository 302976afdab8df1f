"""Alarm schedules: cron (5 fields, or 6 with seconds last), one-off times, timezones
and start/stop dates. Used to validate config and by the local scheduler; the one
meaning of a cron is croniter's (months 1-12, weekdays 0-7, day-of-month or weekday
when both are restricted), and a time without an offset is read in the trigger's
timezone. :mod:`ephemera.deploy.schedules` writes the same schedule in each
platform's form.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from ephemera.errors import ConfigError
from ephemera.timeutil import now_utc, parse_time

_EPSILON = timedelta(microseconds=1)
CRON_HELP = "use 5 fields 'min hour day month weekday' or 6 with seconds last, e.g. '0 2 * * *'"


@dataclass(frozen=True)
class AlarmSchedule:
    """When an alarm fires. Times are timezone-aware."""

    cron: str | None  # cron expression, or None for a one-off alarm
    once: datetime | None  # the single fire time of a one-off alarm
    tz: ZoneInfo  # the zone the cron fields are read in
    start: datetime | None  # no fire before this
    stop: datetime | None  # no fire after this

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after``, or None if it never fires again."""
        if self.start and after < self.start:
            after = max(after, self.start - _EPSILON)
        if self.once is not None:
            nxt = self.once if self.once > after else None
        else:
            it = croniter(self.cron, after.astimezone(self.tz))
            try:
                nxt = it.get_next(datetime)
            except CroniterBadDateError:
                return None
        if nxt is not None and self.stop and nxt > self.stop:
            return None
        return nxt


def validate_alarm(path: str, trig: dict) -> AlarmSchedule:
    """Check an alarm trigger's fields and return its schedule; raises ConfigError."""
    try:
        tz = ZoneInfo(trig.get("timezone") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{path}.timezone", f"unknown timezone '{trig.get('timezone')}'", "use an IANA name such as 'Europe/Madrid'"
        ) from None
    cron, once = trig.get("cron"), trig.get("once")
    if bool(cron) == bool(once):
        raise ConfigError(f"{path}.cron", "an alarm needs exactly one of 'cron' or 'once'", CRON_HELP)
    start = (
        parse_time(f"{path}.start_date", trig["start_date"], default_tz=tz, error=ConfigError) if trig.get("start_date") else None
    )
    stop = parse_time(f"{path}.stop_date", trig["stop_date"], default_tz=tz, error=ConfigError) if trig.get("stop_date") else None
    if start and stop and stop <= start:
        raise ConfigError(f"{path}.stop_date", "is not after start_date", "set a stop_date later than start_date")
    if once:
        schedule = AlarmSchedule(None, parse_time(f"{path}.once", once, default_tz=tz, error=ConfigError), tz, start, stop)
    else:
        fields = str(cron).split()
        if len(fields) not in (5, 6):
            raise ConfigError(f"{path}.cron", f"'{cron}' has {len(fields)} fields", CRON_HELP)
        try:
            croniter(cron)
        except (CroniterBadCronError, ValueError, KeyError) as exc:
            raise ConfigError(f"{path}.cron", f"'{cron}' is not a valid cron expression ({exc})", CRON_HELP) from None
        schedule = AlarmSchedule(cron, None, tz, start, stop)
        if schedule.next_after(start or now_utc()) is None:
            raise ConfigError(
                f"{path}.cron",
                f"'{cron}' never fires" + (" before stop_date" if stop else ""),
                "fix the day/month fields or the stop_date",
            )
    return schedule
