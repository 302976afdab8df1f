"""Alarm scheduler: cron with seconds, one-off alarms, timezones, start/stop dates,
exactly-once across restarts, and the catch-up policies for missed alarms."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from ephemera.errors import ParamError
from ephemera.storage import get_json, put_json
from ephemera.runtime.scheduler import AlarmScheduler, IntervalSchedule, due_times, scheduler_key

WAIT = 20  # generous: seconds to wait for events that should come within ~3 s


class Fires:
    """Collects fires; wait_for(n) blocks until n have arrived."""

    def __init__(self):
        self.items: list[tuple[str, dict]] = []
        self._cond = threading.Condition()

    def __call__(self, trigger: str, params: dict) -> None:
        with self._cond:
            self.items.append((trigger, params))
            self._cond.notify_all()

    def wait_for(self, n: int) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.items) >= n, timeout=WAIT)

    def times(self) -> list[datetime]:
        return [datetime.fromisoformat(p["ephemera_time"]) for _, p in self.items]


def alarm(make_config, **fields) -> dict:
    trig = {"name": "tick", "kind": "alarm", **fields}
    config = make_config(triggers=[trig], rules=[{"trigger": "tick", "action": "apply"}])
    return config.triggers[0].to_dict()  # the scheduler takes the entry with its parsed schedule


def test_six_field_cron_fires_every_second_with_the_payload(make_config, storage):
    trig = alarm(make_config, cron="* * * * * *", payload={"workload": "digits"})
    fires = Fires()
    sched = AlarmScheduler([trig], fires, storage=storage, bucket="state")
    sched.start()
    try:
        assert fires.wait_for(3), "a cron with a seconds field should fire every second"
    finally:
        sched.stop()
    times = fires.times()[:3]
    assert [b - a for a, b in zip(times, times[1:])] == [timedelta(seconds=1)] * 2
    trigger, params = fires.items[0]
    assert trigger == "tick"
    assert params["ephemera_kind"] == "alarm" and params["ephemera_trigger"] == "tick"
    assert params["workload"] == "digits"
    assert all(t.microsecond == 0 and t.utcoffset() == timedelta(0) for t in times)
    # the last handled time is recorded in the state bucket
    record = get_json(storage, "state", scheduler_key("tick"))
    assert datetime.fromisoformat(record["last_scheduled"]) >= times[-1]


def test_once_alarm_fires_exactly_once(make_config, storage):
    when = (datetime.now(timezone.utc) + timedelta(seconds=1)).replace(microsecond=0) + timedelta(seconds=1)
    trig = alarm(make_config, once=when.isoformat())
    fires = Fires()
    sched = AlarmScheduler([trig], fires, storage=storage, bucket="state")
    sched.start()
    try:
        assert fires.wait_for(1)
    finally:
        sched.stop()
    assert fires.times() == [when]
    assert sched.next_fire() is None  # nothing left to fire
    # restarted, it does not fire again
    again = Fires()
    sched2 = AlarmScheduler([trig], again, storage=storage, bucket="state")
    sched2.start()
    sched2.stop()
    assert again.items == [] and sched2.next_fire() is None


def first_start_of_once(make_config, storage, when: datetime) -> "Fires":
    """Start and stop a scheduler (first start) with one ``once`` alarm at ``when``; what fired."""
    fires = Fires()
    sched = AlarmScheduler([alarm(make_config, once=when.isoformat())], fires, storage=storage, bucket="state")
    sched.start()
    sched.stop()
    return fires


def test_first_start_fires_an_alarm_due_moments_ago(make_config, storage):
    # the demo's alarm may come due while `up` is still starting
    when = datetime.now(timezone.utc) - timedelta(seconds=1)
    assert first_start_of_once(make_config, storage, when).times() == [when]


def test_restart_neither_repeats_nor_loses_a_time(make_config, storage):
    trig = alarm(make_config, cron="* * * * * *")
    first = Fires()
    sched = AlarmScheduler([trig], first, storage=storage, bucket="state")
    sched.start()
    assert first.wait_for(2)
    sched.stop()
    second = Fires()
    sched = AlarmScheduler([trig], second, storage=storage, bucket="state")
    sched.start()
    try:
        assert second.wait_for(2)
    finally:
        sched.stop()
    times = first.times() + second.times()
    assert len(set(times)) == len(times), "a scheduled time fired twice"
    assert times == sorted(times)
    assert [b - a for a, b in zip(times, times[1:])] == [timedelta(seconds=1)] * (len(times) - 1), "a second was lost"


def _past_daily(make_config):
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    trig = alarm(
        make_config,
        cron="0 0 * * *",
        start_date=(today - timedelta(days=10)).isoformat(),
        stop_date=(today - timedelta(days=2, hours=-1)).isoformat(),
    )
    missed = [today - timedelta(days=d) for d in (6, 5, 4, 3, 2)]
    return trig, today - timedelta(days=7), missed


@pytest.mark.parametrize("policy, expected", [("skip", []), ("latest", [-1]), ("all", [0, 1, 2, 3, 4])])
def test_catch_up_policies(make_config, storage, policy, expected):
    trig, last, missed = _past_daily(make_config)
    put_json(storage, "state", scheduler_key("tick"), {"trigger": "tick", "last_scheduled": last.isoformat()})
    fires = Fires()
    sched = AlarmScheduler([trig], fires, storage=storage, bucket="state", catch_up=policy)
    sched.start()  # catch-up happens at start-up
    sched.stop()
    assert fires.times() == [missed[i] for i in expected]
    assert all(p.get("ephemera_catch_up") for _, p in fires.items)
    # every missed time is now handled: a second restart fires nothing
    assert datetime.fromisoformat(get_json(storage, "state", scheduler_key("tick"))["last_scheduled"]) == missed[-1]
    again = Fires()
    sched = AlarmScheduler([trig], again, storage=storage, bucket="state", catch_up=policy)
    sched.start()
    sched.stop()
    assert again.items == []


def test_catch_up_all_is_bounded_to_the_newest(make_config, storage):
    trig, last, missed = _past_daily(make_config)
    put_json(storage, "state", scheduler_key("tick"), {"trigger": "tick", "last_scheduled": last.isoformat()})
    fires = Fires()
    sched = AlarmScheduler([trig], fires, storage=storage, bucket="state", catch_up="all", max_catch_up=2)
    sched.start()
    sched.stop()
    assert fires.times() == missed[-2:]


def test_unknown_catch_up_policy_is_rejected(make_config):
    with pytest.raises(ParamError, match="catch_up"):
        AlarmScheduler([alarm(make_config, cron="* * * * *")], Fires(), catch_up="everything")


def test_timezone_is_applied_to_cron_fields(make_config):
    trig = alarm(make_config, cron="0 9 * * *", timezone="Europe/Madrid")
    after = datetime(2026, 1, 10, tzinfo=timezone.utc)
    times, _ = due_times(trig["schedule"], after, after + timedelta(days=1), 10)
    assert times == [datetime(2026, 1, 10, 8, 0, tzinfo=timezone.utc)]  # CET = UTC+1
    summer = datetime(2026, 7, 10, tzinfo=timezone.utc)
    times, _ = due_times(trig["schedule"], summer, summer + timedelta(days=1), 10)
    assert times == [datetime(2026, 7, 10, 7, 0, tzinfo=ZoneInfo("UTC"))]  # CEST = UTC+2
    assert trig["schedule"].next_after(after) == datetime(2026, 1, 10, 8, 0, tzinfo=timezone.utc)


def test_start_and_stop_dates_bound_the_fires(make_config):
    trig = alarm(make_config, cron="0 12 * * *", start_date="2026-03-03T00:00:00Z", stop_date="2026-03-05T12:00:00Z")
    schedule = trig["schedule"]
    wide = datetime(2026, 3, 1, tzinfo=timezone.utc), datetime(2026, 3, 9, tzinfo=timezone.utc)
    times, left_out = due_times(schedule, *wide, 100)
    assert times == [datetime(2026, 3, d, 12, tzinfo=timezone.utc) for d in (3, 4, 5)] and left_out == 0
    assert schedule.next_after(datetime(2026, 3, 5, 12, tzinfo=timezone.utc)) is None
    # the bound keeps the newest and counts the rest
    times, left_out = due_times(schedule, *wide, 1)
    assert times == [datetime(2026, 3, 5, 12, tzinfo=timezone.utc)] and left_out == 2


def test_an_alarm_whose_stop_date_passed_never_fires(make_config, storage):
    trig, _, _ = _past_daily(make_config)
    fires = Fires()
    sched = AlarmScheduler([trig], fires, storage=storage, bucket="state", catch_up="all")
    sched.start()  # first start: nothing was missed "while down" that we know of
    sched.stop()
    assert fires.items == [] and sched.next_fire() is None


def test_interval_schedule():
    first = datetime(2026, 1, 1, tzinfo=timezone.utc)
    sched = IntervalSchedule(60, first)
    assert sched.next_after(first - timedelta(hours=1)) == first
    assert sched.next_after(first) == first + timedelta(seconds=60)
    assert sched.next_after(first + timedelta(seconds=61)) == first + timedelta(seconds=120)


class Clock:
    """A settable clock for the scheduler."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_first_start_records_so_an_alarm_missed_while_down_is_caught_up(make_config, storage):
    start = datetime(2026, 11, 21, 10, 0, 0, tzinfo=timezone.utc)
    trig = alarm(make_config, once=(start + timedelta(seconds=30)).isoformat())
    clock = Clock(start)
    first = AlarmScheduler([trig], Fires(), storage=storage, bucket="state", clock=clock)
    first.start()
    first.stop()  # "killed" before the alarm time
    assert get_json(storage, "state", scheduler_key("tick"))["last_scheduled"] == (start - timedelta(seconds=5)).isoformat()
    clock.now = start + timedelta(minutes=5)  # restarted long after it
    fires = Fires()
    again = AlarmScheduler([trig], fires, storage=storage, bucket="state", catch_up="latest", clock=clock)
    again.start()
    again.stop()
    assert fires.times() == [start + timedelta(seconds=30)]
    assert fires.items[0][1]["ephemera_catch_up"] is True


@pytest.mark.parametrize("since", [None, "made"])
def test_a_first_start_long_after_its_alarms_were_made_fires_them_only_from_since(make_config, storage, since):
    """`ephemera demo` makes its alarm a second ahead, then starts the runtime; a slow
    machine starts it 20 s later. Counted from start-up the alarm is older than the grace
    and never fires (the demo then waits out its whole timeout); counted from ``since``
    (when the alarm was made) it is a missed time, which catch-up "latest" fires once."""
    made = datetime(2026, 11, 21, 10, 0, 0, tzinfo=timezone.utc)
    trig = alarm(make_config, once=(made + timedelta(seconds=1)).isoformat())
    clock = Clock(made + timedelta(seconds=20))
    fires = Fires()
    sched = AlarmScheduler(
        [trig], fires, storage=storage, bucket="state", catch_up="latest", clock=clock, since=made if since else None
    )
    sched.mark_started()  # as the runtime does, before its start-up reaper pass
    sched.start()
    sched.stop()
    if since:
        assert fires.times() == [made + timedelta(seconds=1)]
        assert fires.items[0][1]["ephemera_catch_up"] is True
    else:
        assert fires.times() == []


def test_a_fire_whose_invocation_never_finished_is_fired_again_on_restart(make_config, storage):
    from concurrent.futures import Future

    start = datetime(2026, 11, 21, 10, 0, 0, tzinfo=timezone.utc)
    trig = alarm(make_config, once=start.isoformat())
    clock = Clock(start + timedelta(seconds=1))
    unfinished: list[Future] = []

    def fire(trigger, params):  # dispatched, but the runtime dies before the action ends
        unfinished.append(Future())
        return unfinished[-1:]

    crashed = AlarmScheduler([trig], fire, storage=storage, bucket="state", clock=clock)
    crashed.start()
    crashed.stop()
    assert len(unfinished) == 1
    assert get_json(storage, "state", scheduler_key("tick"))["pending"] == [start.isoformat()]

    fires = Fires()
    restarted = AlarmScheduler([trig], fires, storage=storage, bucket="state", clock=clock)
    restarted.start()
    restarted.stop()
    assert fires.times() == [start]  # once more: the apply it reaches is a duplicate no-op
    assert get_json(storage, "state", scheduler_key("tick"))["pending"] == []

    fires_after = Fires()
    third = AlarmScheduler([trig], fires_after, storage=storage, bucket="state", clock=clock)
    third.start()
    third.stop()
    assert fires_after.items == []  # nothing pending, nothing due: no repeat


class _GatedStorage:
    """Localhost storage whose next put of one key, from the scheduler's loop thread,
    holds until another put of that key has finished (or a bound passes): the
    interleaving in which an older record could land over a newer one."""

    def __init__(self, inner, key: str):
        self.inner, self.key = inner, key
        self.gate_armed = False
        self.gated_put_started = threading.Event()
        self.other_put_done = threading.Event()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, bucket, key, data):
        gated = key == self.key and self.gate_armed and threading.current_thread().name == "ephemera-scheduler"
        if gated:
            self.gate_armed = False
            self.gated_put_started.set()
            self.other_put_done.wait(2)  # a correct scheduler never lets the other put run meanwhile
        info = self.inner.put(bucket, key, data)
        if key == self.key and not gated and self.gated_put_started.is_set():
            self.other_put_done.set()
        return info


def test_a_finished_fire_is_never_recorded_pending_again_by_an_older_snapshot(make_config, storage):
    from concurrent.futures import Future

    start = datetime(2026, 11, 21, 10, 0, 0, tzinfo=timezone.utc)
    trig = alarm(make_config, cron="* * * * * *")
    clock = Clock(start)
    futures: list[Future] = []

    def fire(trigger, params):
        futures.append(Future())
        return futures[-1:]

    gated = _GatedStorage(storage, scheduler_key("tick"))
    sched = AlarmScheduler([trig], fire, storage=gated, bucket="state", clock=clock)
    sched.start()  # fires `start` (first start: the newest time within grace)
    try:
        assert len(futures) == 1
        gated.gate_armed = True
        clock.now = start + timedelta(seconds=1)  # the loop records start+1s, its put held
        assert gated.gated_put_started.wait(WAIT)
        futures[0].set_result(None)  # the first fire's invocation ends meanwhile
        assert _wait(lambda: len(futures) == 2)
    finally:
        sched.stop()
    record = get_json(storage, "state", scheduler_key("tick"))
    assert record["pending"] == [(start + timedelta(seconds=1)).isoformat()], "a finished fire would be re-fired on restart"


def _wait(predicate) -> bool:
    import time

    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_failing_round_is_logged_and_the_scheduler_keeps_running(make_config, storage, caplog):
    start = datetime(2026, 11, 21, 10, 0, 0, tzinfo=timezone.utc)
    trig = alarm(make_config, once=(start + timedelta(seconds=30)).isoformat())

    class FlakyClock(Clock):
        fail = False

        def __call__(self):
            if self.fail:
                self.fail = False
                raise RuntimeError("clock exploded")
            return self.now

    clock = FlakyClock(start)
    fires = Fires()
    sched = AlarmScheduler([trig], fires, storage=storage, bucket="state", clock=clock)
    sched.start()
    try:
        clock.fail = True
        assert _wait(lambda: not clock.fail)  # the loop hit the failure
        clock.now = start + timedelta(seconds=30)
        assert fires.wait_for(1), "the scheduler thread died on one failing round"
    finally:
        sched.stop()
    assert fires.times() == [start + timedelta(seconds=30)]
    assert any("clock exploded" in (r.exc_text or "") or "round failed" in r.getMessage() for r in caplog.records)


def test_once_alarm_already_past_at_first_start_says_so(make_config, storage, caplog):
    """Issue 11, defect 14: a ``once:`` time already past at the first start is not
    dropped silently: a warning names the alarm and its time."""
    import logging

    caplog.set_level(logging.INFO)
    when = datetime.now(timezone.utc) - timedelta(hours=2)
    assert first_start_of_once(make_config, storage, when).times() == []
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "never fire" in r.getMessage()]
    assert len(warned) == 1 and "'tick'" in warned[0] and when.isoformat()[:16] in warned[0], caplog.text
