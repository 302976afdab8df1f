"""Alarms as EventBridge Scheduler schedules.

Facts (EventBridge "Cron expressions"): "Cron expressions have six required fields":
Minutes 0-59, Hours 0-23, Day-of-month 1-31, Month 1-12 or JAN-DEC, Day-of-week "1-7 or
SUN-SAT" (1 is Sunday), Year 1970-2199; "You can't use * in both the Day-of-month and
Day-of-week fields. If you use it in one, you must use ? in the other"; "Cron
expressions that lead to rates faster than 1 minute are not supported". One-time
schedules are ``at(yyyy-mm-ddThh:mm:ss)``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from croniter import croniter

from ephemera.config.alarms import validate_alarm
from ephemera.deploy.aws.schedules import scheduler_cron, schedule_args
from ephemera.errors import ConfigError

NOW = datetime(2026, 12, 7, 4, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "cron, expected",
    [
        ("0 2 * * *", "cron(0 2 * * ? *)"),
        ("*/5 * * * *", "cron(0/5 * * * ? *)"),
        ("*/15 9-17 * * 1-5", "cron(0/15 9-17 ? * 2-6 *)"),  # Monday-Friday: 2-6 where Sunday is 1
        ("0 0 * * 0", "cron(0 0 ? * 1 *)"),
        ("0 0 * * 7", "cron(0 0 ? * 1 *)"),  # croniter's other Sunday
        ("0 0 * * 6,0", "cron(0 0 ? * 1,7 *)"),
        ("0 8 1,15 * *", "cron(0 8 1,15 * ? *)"),
        ("0 0 */2 jan,jul *", "cron(0 0 1/2 1,7 ? *)"),
        ("30 2 * * * 0", "cron(30 2 * * ? *)"),  # a seconds field of 0 is a whole minute
    ],
)
def test_crons_translate_to_six_fields_with_a_question_mark(cron, expected):
    assert scheduler_cron("t.cron", cron) == expected


def _back(expression: str) -> str:
    """The AWS expression read back as a standard cron (``?`` is any, Sunday 1 -> 0, no year)."""
    fields = expression.removeprefix("cron(").removesuffix(")").split()
    assert len(fields) == 6 and fields[5] == "*" and "?" in (fields[2], fields[4])
    minute, hour, day, month, weekday = fields[:5]

    def shift(part: str) -> str:
        if part in ("?", "*"):
            return "*"
        out = []
        for item in part.split(","):
            if "/" in item:
                start, step = item.split("/")
                out.append(f"{int(start) - 1}-6/{step}")
            elif "-" in item:
                a, b = item.split("-")
                out.append(f"{int(a) - 1}-{int(b) - 1}")
            else:
                out.append(str(int(item) - 1))
        return ",".join(out)

    def plain(part: str) -> str:
        if part == "?":
            return "*"
        if "/" in part:
            start, step = part.split("/")
            return f"{start}-{ {0: 59, 1: 23}.get(fields.index(part), 31) }/{step}".replace(" ", "")
        return part

    return " ".join([plain(minute), plain(hour), plain(day), month, shift(weekday)])


@pytest.mark.parametrize(
    "cron", ["0 2 * * *", "*/15 9-17 * * 1-5", "0 0 * * 0", "0 0 * * 6,0", "0 8 1,15 * *", "7 3 * 2-4 *", "0 12 * * 1,3,5"]
)
def test_the_translation_fires_at_the_same_times(cron):
    """Read back, the AWS schedule fires at the same 200 times as the config's cron."""
    back = _back(scheduler_cron("t.cron", cron))
    a, b = croniter(cron, NOW), croniter(back, NOW)
    assert [a.get_next(datetime) for _ in range(200)] == [b.get_next(datetime) for _ in range(200)], back


@pytest.mark.parametrize(
    "cron, words",
    [
        ("0 0 1 * 1", "both the day of the month and the weekday"),
        ("* * * * * 30", "at seconds 30"),
        ("0 0 L * *", "day form"),
    ],
)
def test_what_the_scheduler_cannot_say_is_refused_naming_the_field(cron, words):
    with pytest.raises(ConfigError) as err:
        scheduler_cron("triggers[0].cron", cron)
    assert "triggers[0].cron" in err.value.message and words in err.value.message


def test_time_zone_window_and_one_off_times():
    schedule = validate_alarm(
        "triggers[0]",
        {
            "name": "n",
            "cron": "0 2 * * *",
            "timezone": "Europe/Madrid",
            "start_date": "2027-01-01T00:00:00Z",
            "stop_date": "2027-06-01T00:00:00Z",
        },
    )
    args = schedule_args("triggers[0]", schedule, NOW)
    assert args == [
        "--schedule-expression",
        "cron(0 2 * * ? *)",
        "--schedule-expression-timezone",
        "Europe/Madrid",
        "--start-date",
        "2027-01-01T00:00:00.000Z",
        "--end-date",
        "2027-06-01T00:00:00.000Z",
    ]
    once = validate_alarm("triggers[1]", {"name": "o", "once": "2027-03-01T10:30:00+01:00"})
    assert schedule_args("triggers[1]", once, NOW) == [
        "--schedule-expression",
        "at(2027-03-01T09:30:00)",
        "--schedule-expression-timezone",
        "UTC",
    ]
    past = validate_alarm("triggers[1]", {"name": "o", "once": (NOW - timedelta(hours=1)).isoformat()})
    with pytest.raises(ConfigError, match="has passed"):
        schedule_args("triggers[1]", past, NOW)
