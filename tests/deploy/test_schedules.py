"""One meaning per schedule: the config's cron (croniter: 5 fields, or 6 with seconds
last; months 1-12; weekdays 0-7) fires at the same times on every platform.

- OpenWhisk's alarms feed runs npm ``cron`` 1.8.2: ``timeUnits = ['second', 'minute',
  'hour', 'dayOfMonth', 'month', 'dayOfWeek']`` (six fields: seconds first), constraints
  ``[[0, 59], [0, 59], [0, 23], [1, 31], [0, 11], [0, 6]]`` (months 0-11, weekdays
  0-6) and aliases ``jan: 0 ... dec: 11, sun: 0 ... sat: 6``.
- Code Engine cron subscriptions: "standard crontab syntax ... minute, hour, day of
  the month, month of the year, and day of the week" (five fields).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from ephemera.config import ConfigError
from ephemera.config.alarms import validate_alarm
from ephemera.deploy.schedules import alarm_dates, code_engine_cron, openwhisk_cron

CRONS = [
    ("0 2 * * *", "Europe/Madrid"),
    ("*/15 9-17 * 1-3,12 1-5", "UTC"),
    ("0 0 1 * 7", "America/New_York"),  # Sunday as 7: the feed refuses 7
    ("30 4 1,15 jun-aug *", "Asia/Tokyo"),
    ("0 12 * */3 sun", "UTC"),  # day-of-month unrestricted, weekday restricted
    ("0 6 13 * 5", "UTC"),  # both restricted: the 13th, or a Friday
    ("0 0 * 12 *", "UTC"),  # December: month 12 does not exist in the feed
]
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _alarm(cron: str, tz: str = "UTC", **dates):
    trig = {
        "name": "t",
        "kind": "alarm",
        "cron": cron,
        "once": None,
        "timezone": tz,
        "start_date": None,
        "stop_date": None,
        **dates,
    }
    return validate_alarm("triggers[0]", trig)


def _fires(cron: str, tz: str, n: int = 40) -> list[str]:
    it = croniter(cron, START.astimezone(ZoneInfo(tz)))
    return [it.get_next(datetime).astimezone(timezone.utc).isoformat() for _ in range(n)]


def test_openwhisk_form():
    assert openwhisk_cron("c", "0 2 * * *") == "0 2 * * *"
    assert openwhisk_cron("c", "*/15 9-17 * 1-3,12 1-5") == "0,15,30,45 9-17 * jan-mar,dec 1-5"
    assert openwhisk_cron("c", "0 0 1 * 7") == "0 0 1 * 0"
    assert openwhisk_cron("c", "30 2 * * * */20") == "0,20,40 30 2 * * *"  # seconds move to the front


@pytest.mark.parametrize("cron, tz", CRONS)
def test_code_engine_form_fires_when_the_config_does(cron, tz):
    assert _fires(code_engine_cron("c", cron), tz) == _fires(cron, tz)


def test_code_engine_takes_no_seconds():
    assert code_engine_cron("c", "30 2 * * * 0") == "30 2 * * *"
    with pytest.raises(ConfigError) as info:
        code_engine_cron("triggers[0].cron", "30 2 * * * */20")
    assert info.value.field == "triggers[0].cron" and "5 fields" in str(info.value)


def test_dates_are_sent_in_utc_read_in_the_triggers_zone():
    now = datetime(2026, 6, 1, tzinfo=timezone.utc)
    schedule = _alarm("0 2 * * *", "Europe/Madrid", start_date="2026-07-01T00:00:00", stop_date="2026-08-01T00:00:00+02:00")
    assert alarm_dates("t", schedule, now) == {"start": "2026-06-30T22:00:00.000Z", "stop": "2026-07-31T22:00:00.000Z"}
    assert "start" not in alarm_dates("t", schedule, datetime(2026, 7, 2, tzinfo=timezone.utc))  # past: no constraint left
    with pytest.raises(ConfigError) as info:
        alarm_dates("t", schedule, datetime(2026, 8, 2, tzinfo=timezone.utc))
    assert info.value.field == "t.stop_date"
    once = validate_alarm(
        "t",
        {
            "name": "t",
            "kind": "alarm",
            "cron": None,
            "once": "2026-07-01T09:30:00",
            "timezone": "Asia/Tokyo",
            "start_date": None,
            "stop_date": None,
        },
    )
    assert alarm_dates("t", once, now) == {"once": "2026-07-01T00:30:00.000Z"}
    with pytest.raises(ConfigError):
        alarm_dates("t", once, datetime(2026, 7, 2, tzinfo=timezone.utc))


@pytest.fixture(scope="module")
def node_cron(tmp_path_factory):
    """npm cron@1.8.2, the version the alarms provider pins, and a script printing its next fire times."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are needed to run the alarms feed's cron library")
    root = tmp_path_factory.mktemp("cron182")
    done = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--silent", "cron@1.8.2"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (root / "next.js").write_text(
        "const {CronTime} = require('cron'); const moment = require('moment-timezone');\n"
        "const [expr, tz, from, n] = process.argv.slice(2); const ct = new CronTime(expr, tz);\n"
        "let t = moment(from); const out = [];\n"
        "for (let i = 0; i < +n; i++) { t = ct._getNextDateFrom(t, tz); out.push(t.toISOString()); }\n"
        "console.log(JSON.stringify(out));\n"
    )

    def fires(expr: str, tz: str, n: int = 40) -> list[str]:
        run = subprocess.run(
            [node, "next.js", expr, tz, START.isoformat(), str(n)], cwd=root, capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0, run.stderr
        return [datetime.fromisoformat(t.replace("Z", "+00:00")).isoformat() for t in json.loads(run.stdout)]

    def refuses(expr: str) -> bool:
        run = subprocess.run(
            [node, "-e", f"new (require('cron').CronTime)({json.dumps(expr)})"], cwd=root, capture_output=True, timeout=60
        )
        return run.returncode != 0

    fires.refuses = refuses
    return fires


@pytest.mark.slow
@pytest.mark.parametrize("cron, tz", CRONS)
def test_the_alarms_feed_fires_the_translated_cron_when_the_config_does(node_cron, cron, tz):
    assert node_cron(openwhisk_cron("c", cron), tz) == _fires(cron, tz)


@pytest.mark.slow
def test_the_alarms_feed_reads_the_untranslated_cron_otherwise(node_cron):
    """Why the translation exists: the same text means another month there, or nothing."""
    assert node_cron.refuses("0 0 * 12 *") and node_cron.refuses("0 0 1 * 7")
    assert node_cron("0 0 1 1 *", "UTC", 1) == ["2026-02-01T00:00:00+00:00"]  # month 1 is February
    assert _fires("0 0 1 1 *", "UTC", 1) == ["2027-01-01T00:00:00+00:00"]
    assert node_cron(openwhisk_cron("c", "0 0 1 1 *"), "UTC", 1) == ["2027-01-01T00:00:00+00:00"]
