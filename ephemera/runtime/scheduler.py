"""Alarm triggers of the local runtime: fire each scheduled time exactly once.

One thread sleeps until the earliest next fire time of all alarms (waking at once
when stopped), then hands each due alarm's event params to ``fire(trigger, params)``:
``{"ephemera_kind": "alarm", "ephemera_trigger": name, "ephemera_time": <scheduled
time, ISO 8601 UTC>, **payload}``.

The newest scheduled time handled (fired or deliberately skipped) is kept per
trigger in the state bucket at ``ephemera/scheduler/<trigger>.json``, written at the
first start and before each fire is dispatched, together with the fires still
*pending* (dispatched, invocation not finished). A restart re-fires what was pending,
so a crash between recording and dispatching loses nothing; this repeats no run,
because an alarm's run id is its workspace and scheduled time (a re-fire is a
duplicate, a no-op). Times that passed while the runtime was down are handled by the
catch-up policy:

- ``skip`` (default): fire none of them, log how many were missed;
- ``latest``: fire the most recent missed time, once;
- ``all``: fire each missed time, oldest first, at most ``max_catch_up`` (newest).

A time less than ``grace`` seconds old is not "missed" but on time, so a quick
restart loses nothing. On a first start (no record), only the newest time within
``grace`` before start-up fires; a caller that made its alarms earlier and was busy
since (``since``) has the times after that handled by the catch-up policy instead of
lost (``ephemera demo``: its alarm is a second away when a slow machine starts the
runtime).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from ephemera.errors import NoSuchKeyError, ParamError
from ephemera.storage import get_json, put_json
from ephemera.storage.base import Storage
from ephemera.timeutil import now_utc

SCHEDULER_PREFIX = "ephemera/scheduler/"
CATCH_UP_POLICIES = ("skip", "latest", "all")
_US = timedelta(microseconds=1)
_RETRY_SECONDS = 1.0  # pause after a failed scheduler round
log = logging.getLogger("ephemera.runtime.scheduler")


def scheduler_key(trigger: str) -> str:
    """Where the scheduler records the last handled time of one alarm trigger."""
    return f"{SCHEDULER_PREFIX}{trigger}.json"


@dataclass(frozen=True)
class IntervalSchedule:
    """Every ``seconds`` seconds from ``first`` on; the runtime's built-in reaper alarm."""

    seconds: float  # the period
    first: datetime  # the first fire time (timezone-aware)

    def next_after(self, after: datetime) -> datetime:
        if after < self.first:
            return self.first
        periods = int((after - self.first).total_seconds() // self.seconds) + 1
        nxt = self.first + timedelta(seconds=periods * self.seconds)
        return nxt if nxt > after else nxt + timedelta(seconds=self.seconds)


def due_times(schedule: Any, after: datetime, upto: datetime, limit: int) -> tuple[list[datetime], int]:
    """Fire times ``t`` with ``after < t <= upto``, oldest first: the newest ``limit`` of
    them, and how many older ones were left out."""
    if upto <= after:
        return [], 0
    cron = getattr(schedule, "cron", None)
    if cron:  # walk backwards from upto: cheap however long the runtime was down
        from croniter import croniter

        start, stop = getattr(schedule, "start", None), getattr(schedule, "stop", None)
        top = min(upto, stop) if stop else upto
        it = croniter(cron, (top + _US).astimezone(schedule.tz))
        found: list[datetime] = []
        while True:
            t = it.get_prev(datetime)
            if t <= after or (start and t < start):
                break
            if t <= top:
                found.append(t)
            if len(found) > limit:
                break
        left_out = 0
        if len(found) > limit:
            # count the rest only roughly: walking them all could take long
            found = found[:limit]
            left_out = _count_between(schedule, after, found[-1], cap=10_000)
        return list(reversed(found)), left_out
    found, t = [], after
    while True:  # one-off and interval schedules: few times, walk forwards
        t = schedule.next_after(t)
        if t is None or t > upto:
            break
        found.append(t)
    return found[-limit:] if limit else [], max(0, len(found) - limit)


def _count_between(schedule: Any, after: datetime, before: datetime, cap: int) -> int:
    count, t = 0, after
    while count < cap:
        t = schedule.next_after(t)
        if t is None or t >= before:
            break
        count += 1
    return count


def select_fires(times: list[datetime], now: datetime, policy: str, grace: float) -> tuple[list[datetime], list[datetime]]:
    """Split due ``times`` into (to fire, to skip) under a catch-up ``policy``: times at
    most ``grace`` seconds old are on time and always fire."""
    late = [t for t in times if (now - t).total_seconds() > grace]
    on_time = [t for t in times if (now - t).total_seconds() <= grace]
    if policy == "all":
        chosen = late
    elif policy == "latest":
        chosen = late[-1:]
    else:
        chosen = []
    return chosen + on_time, [t for t in late if t not in chosen]


@dataclass
class _Alarm:
    """The scheduler's view of one alarm trigger."""

    name: str  # the trigger's name
    schedule: Any  # AlarmSchedule or IntervalSchedule: has next_after(dt)
    payload: dict  # the trigger's payload, merged into each fire's params
    persist: bool  # keep the last handled time in the state bucket
    cursor: datetime | None = None  # the newest scheduled time handled so far
    next: datetime | None = None  # the next fire time, None when it never fires again
    fired: int = 0  # fires in this process
    pending: set = field(default_factory=set)  # fired times whose invocations have not finished
    missed: list = field(default_factory=list)  # times skipped by the catch-up policy here


class AlarmScheduler:
    """Runs a set of alarm triggers on one thread until :meth:`stop`."""

    def __init__(
        self,
        triggers: list[dict],
        fire: Callable[[str, dict], None],
        *,
        storage: Storage | None = None,
        bucket: str | None = None,
        catch_up: str = "skip",
        max_catch_up: int = 100,
        grace: float = 5.0,
        clock: Callable[[], datetime] = now_utc,
        since: datetime | None = None,
    ):
        if catch_up not in CATCH_UP_POLICIES:
            raise ParamError("catch_up", f"'{catch_up}' is not one of {', '.join(CATCH_UP_POLICIES)}", "use skip, latest or all")
        if max_catch_up < 1:
            raise ParamError("max_catch_up", f"must be at least 1, got {max_catch_up}", "e.g. 100")
        self.fire = fire  # callback(trigger name, event params)
        self.storage, self.bucket = storage, bucket  # where last handled times are kept
        self.catch_up, self.max_catch_up, self.grace = catch_up, max_catch_up, float(grace)
        self.clock = clock
        self.since = since  # a first start counts missed times from here, not from start-up
        self.alarms = [
            _Alarm(t["name"], t["schedule"], dict(t.get("payload") or {}), bool(t.get("persist", True)) and storage is not None)
            for t in triggers
        ]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # guards every alarm's cursor/pending and each record write: the loop thread and
        # invocation callbacks (other threads) both change them; re-entrant for _save
        self._state_lock = threading.RLock()

    # lifecycle -----------------------------------------------------------------
    def mark_started(self) -> None:
        """Record, for each persisted alarm without a record, that a runtime is up from now
        (less the grace): a runtime killed before :meth:`start` (during ``up``'s start-up
        reaper pass) still has its restart fire what it missed since."""
        now = self.clock()
        for alarm in self.alarms:
            if alarm.persist and self._load(alarm)[0] is None:
                alarm.cursor = self._first_cursor(now)
                self._save(alarm, now)

    def _first_cursor(self, now: datetime) -> datetime:
        """Where a first start counts missed times from: ``grace`` before start-up, or
        before ``since`` when the caller says it has been up since then."""
        return min(now, self.since or now) - timedelta(seconds=self.grace)

    def start(self) -> None:
        """Load each alarm's record, handle what was missed, and start the thread."""
        now = self.clock()
        for alarm in self.alarms:
            last, pending = self._load(alarm) if alarm.persist else (None, [])
            alarm.cursor = last if last is not None else self._first_cursor(now)
            if pending:
                log.warning("alarm '%s': re-firing %d time(s) dispatched before the last stop", alarm.name, len(pending))
                for t in pending:
                    self._dispatch(alarm, t, now, again=True)
            if last is None:
                times, _ = due_times(alarm.schedule, alarm.cursor, now, 1)  # first start: the newest only
                self._handle(alarm, times, 0, now)
                if not times and alarm.next is None:
                    when = alarm.schedule.once or alarm.schedule.stop
                    log.warning(
                        "alarm '%s' will never fire: %s %s is already past at the first start",
                        alarm.name,
                        "its time" if alarm.schedule.once else "its stop_date",
                        when.isoformat() if when else "-",
                    )
                if alarm.persist and not times:
                    self._save(alarm, now)  # so a restart knows what it missed since now
            else:
                self._advance(alarm, now)
        self._thread = threading.Thread(target=self._run, name="ephemera-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def next_fire(self) -> datetime | None:
        """The earliest upcoming fire time of all alarms."""
        pending = [a.next for a in self.alarms if a.next is not None]
        return min(pending) if pending else None

    # the loop --------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self._tick()
            except Exception:  # one bad round must not end every alarm silently
                log.exception("alarm scheduler: a round failed; trying again in %g s", _RETRY_SECONDS)
                delay = _RETRY_SECONDS
            if delay is None:
                self._stop.wait()  # nothing will ever fire again: wait for stop
                break
            # short naps: a wall-clock jump or a suspend is noticed within a second
            self._stop.wait(min(max(delay, 0.0), 1.0))

    def _tick(self) -> float | None:
        """Fire what is due; seconds until the next fire time, None if there is none."""
        now = self.clock()
        for alarm in self.alarms:
            if alarm.next is not None and alarm.next <= now:
                self._advance(alarm, now)
        nxt = self.next_fire()
        return None if nxt is None else (nxt - self.clock()).total_seconds()

    def _advance(self, alarm: _Alarm, now: datetime) -> None:
        try:
            times, left_out = due_times(alarm.schedule, alarm.cursor, now, self.max_catch_up)
        except Exception:  # a schedule bug must not stop the other alarms
            log.exception("alarm '%s': cannot compute its fire times; it is disabled", alarm.name)
            alarm.next = None
            return
        self._handle(alarm, times, left_out, now)

    def _handle(self, alarm: _Alarm, times: list[datetime], left_out: int, now: datetime) -> None:
        fires, skipped = select_fires(times, now, self.catch_up, self.grace)
        if times:
            with self._state_lock:
                alarm.cursor = times[-1]
                alarm.pending.update(fires)
                if alarm.persist:
                    self._save(alarm, now)  # before firing: a crash re-fires the pending ones
        missed = len(skipped) + left_out
        if missed:
            alarm.missed.extend(skipped)
            newest = skipped[-1].isoformat() if skipped else "-"
            log.warning(
                "alarm '%s': %d scheduled time(s) missed while not running (newest %s); catch-up policy '%s' skips them",
                alarm.name,
                missed,
                newest,
                self.catch_up,
            )
        for t in fires:
            self._dispatch(alarm, t, now)
        base = max(alarm.cursor, now) if alarm.cursor else now
        alarm.next = alarm.schedule.next_after(base)

    def _dispatch(self, alarm: _Alarm, t: datetime, now: datetime, again: bool = False) -> None:
        """Fire one scheduled time; it stays pending until its invocations finish."""
        params = {
            "ephemera_kind": "alarm",
            "ephemera_trigger": alarm.name,
            "ephemera_time": t.astimezone(timezone.utc).isoformat(),
            **alarm.payload,
        }
        if (now - t).total_seconds() > self.grace:
            params["ephemera_catch_up"] = True
        alarm.fired += 1
        with self._state_lock:
            alarm.pending.add(t)
        log.info(
            "alarm '%s' %s for %s",
            alarm.name,
            "re-fires (pending at the last stop)" if again else "fires",
            params["ephemera_time"],
        )
        try:
            futures = self.fire(alarm.name, params) or []
        except Exception:
            log.exception("alarm '%s': dispatching the fire for %s failed", alarm.name, params["ephemera_time"])
            return  # stays pending: the next start fires it again
        remaining = [len(futures)]

        def finished(_future=None) -> None:
            with self._state_lock:
                remaining[0] -= 1
                if remaining[0] > 0:
                    return
                alarm.pending.discard(t)
                if alarm.persist:
                    self._save(alarm, self.clock())

        if not futures:
            remaining[0] = 1
            finished()
        for future in futures:
            future.add_done_callback(finished)

    # state -------------------------------------------------------------------------
    def _load(self, alarm: _Alarm) -> tuple[datetime | None, list[datetime]]:
        """(last handled time, times still pending) from the alarm's record."""
        try:
            data = get_json(self.storage, self.bucket, scheduler_key(alarm.name))
            return datetime.fromisoformat(data["last_scheduled"]), sorted(
                datetime.fromisoformat(t) for t in data.get("pending", [])
            )
        except NoSuchKeyError:
            return None, []
        except Exception as exc:  # unreadable record: behave as a first start, say so
            log.error(
                "alarm '%s': cannot read %s (%s); treating this as a first start", alarm.name, scheduler_key(alarm.name), exc
            )
            return None, []

    def _save(self, alarm: _Alarm, now: datetime) -> None:
        """Write the alarm's record. The snapshot and the write happen under one lock, so
        records are written in the order their states occurred: an older snapshot never
        lands after a newer one."""
        with self._state_lock:
            record = {
                "trigger": alarm.name,
                "last_scheduled": alarm.cursor.astimezone(timezone.utc).isoformat(),
                "pending": sorted(t.astimezone(timezone.utc).isoformat() for t in alarm.pending),
                "updated": now.astimezone(timezone.utc).isoformat(),
            }
            try:
                put_json(self.storage, self.bucket, scheduler_key(alarm.name), record)
            except Exception as exc:
                log.error("alarm '%s': cannot record its last fire time (%s); a restart may repeat it", alarm.name, exc)
