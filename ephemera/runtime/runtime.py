"""The local event runtime behind ``ephemera up``.

:func:`run_up` runs the ``triggers`` and ``rules`` of a config until stopped: the
alarm scheduler, the bucket-write watchers (filesystem events on localhost storage,
polling elsewhere) and the invoker's lanes of warm action processes (``max_concurrent``
invocations at once per lane; ``warm=False``: a fresh process per invocation;
``lanes=False``: one queue for every action). Every fire of a trigger
invokes each rule bound to it with ``{**rule.params, **event_params, "config":
<the config, unredacted>}`` and leaves an activation record. A built-in alarm
invokes the ``reap`` action every ``reap_interval`` seconds when ``ephemera.actions.reap``
exists (or a ``reap`` target is given) and no rule of the config binds ``reap``.
"""

from __future__ import annotations

import importlib.util
import logging
import signal
import threading
from datetime import datetime, timedelta
from typing import Callable

from ephemera.assembly import load_config
from ephemera.config import ACTIONS, Config
from ephemera.errors import ConfigError, ParamError
from ephemera.storage import get_storage
from ephemera.timeutil import now_utc
from ephemera.runtime.activations import complete_interrupted
from ephemera.runtime.invoker import Invoker
from ephemera.runtime.scheduler import CATCH_UP_POLICIES, AlarmScheduler, IntervalSchedule
from ephemera.runtime.watcher import FilesystemWatcher, PollingWatcher

log = logging.getLogger("ephemera.runtime")
REAPER_TRIGGER = "ephemera:reaper"  # ':' cannot occur in a configured trigger name
WATCH_MODES = ("auto", "events", "poll")


def default_target(action: str) -> str:
    return f"ephemera.actions.{action}:main"


def resolve_targets(action_targets: dict | None) -> dict[str, str]:
    """Action name -> "module:function", the defaults overlaid by ``action_targets``."""
    targets = {a: default_target(a) for a in ACTIONS}
    for action, target in (action_targets or {}).items():
        module, _, func = str(target).partition(":")
        if not module or not func or not all(p.isidentifier() for p in module.split(".")) or not func.isidentifier():
            raise ParamError(
                f"action_targets.{action}", f"'{target}' is not 'module:function'", "e.g. 'ephemera.actions.apply:main'"
            )
        targets[action] = target
    return targets


def _module_exists(target: str) -> bool:
    try:
        return importlib.util.find_spec(target.partition(":")[0]) is not None
    except (ImportError, ValueError):
        return False


class Runtime:
    """The running parts of ``ephemera up``; :func:`run_up` drives it."""

    def __init__(
        self,
        config: Config,
        *,
        action_targets: dict | None = None,
        reap_interval: float | None = 60,
        catch_up: str = "skip",
        poll_interval: float = 2.0,
        watch: str = "auto",
        max_concurrent: int = 16,
        on_activation: Callable | None = None,
        warm: bool = True,
        lanes: bool = True,
        since: datetime | None = None,
    ):
        if catch_up not in CATCH_UP_POLICIES:
            raise ParamError("catch_up", f"'{catch_up}' is not one of {', '.join(CATCH_UP_POLICIES)}", "use skip, latest or all")
        if watch not in WATCH_MODES:
            raise ParamError("watch", f"'{watch}' is not one of {', '.join(WATCH_MODES)}", "use auto, events or poll")
        self.config = config  # the validated config
        self.targets = resolve_targets(action_targets)  # action -> "module:function"
        self.storage = get_storage(config)  # state and trigger buckets live here
        self.bucket = config.state_bucket  # activation and scheduler records
        self._new_state_bucket = self.bucket in getattr(self.storage, "created_buckets", ())  # made just now (localhost)
        self._config_dict = config.to_dict(redact=False)  # given to every action (via stdin)
        self.rules: dict[str, list[dict]] = {}  # trigger name -> rules bound to it
        for rule in config.rules:
            self.rules.setdefault(rule.trigger, []).append(rule.to_dict())
        self.invoker = Invoker(
            self.storage,
            self.bucket,
            timeout=config.timeouts.action,
            secret_values=config.secret_values(),
            max_workers=max_concurrent,
            on_done=on_activation,
            warm=warm,
            lanes=lanes,
        )
        self._parts: list = []  # started schedulers/watchers, stopped in reverse
        self._build_parts(reap_interval, catch_up, poll_interval, watch, since)

    def _build_parts(self, reap_interval, catch_up, poll_interval, watch, since) -> None:
        bound = [t.to_dict() for t in self.config.triggers if t.name in self.rules]
        for trig in self.config.triggers:
            if trig.name not in self.rules:
                log.warning("trigger '%s' has no rule bound to it; it is not run", trig.name)
        alarms = [t for t in bound if t["kind"] == "alarm"]
        if reap_interval and self._want_reaper():
            first = now_utc() + timedelta(seconds=float(reap_interval))
            alarms.append(
                {
                    "name": REAPER_TRIGGER,
                    "schedule": IntervalSchedule(float(reap_interval), first),
                    "payload": {},
                    "persist": False,
                }
            )
            self.rules[REAPER_TRIGGER] = [{"name": "ephemera-reaper", "trigger": REAPER_TRIGGER, "action": "reap", "params": {}}]
        if alarms:
            self._parts.append(
                AlarmScheduler(alarms, self.dispatch, storage=self.storage, bucket=self.bucket, catch_up=catch_up, since=since)
            )
        writes = [t for t in bound if t["kind"] == "object_write"]
        if writes:
            use_events = watch == "events" or (watch == "auto" and self.storage.traits.fs_events)
            if use_events and not self.storage.traits.fs_events:
                raise ParamError(
                    "watch", f"filesystem events need localhost storage, not {self.storage.backend}", "use watch='poll' or 'auto'"
                )
            if use_events:
                self._parts.append(FilesystemWatcher(self.storage, writes, self.dispatch))
            else:
                self._parts.append(PollingWatcher(self.storage, writes, self.dispatch, interval=poll_interval))

    def _want_reaper(self) -> bool:
        if any(r["action"] == "reap" for rules in self.rules.values() for r in rules):
            log.info("a rule of the config binds 'reap': the built-in reaper alarm is off")
            return False
        return _module_exists(self.targets["reap"])

    def start(self) -> None:
        self._check_buckets()
        for record in complete_interrupted(self.storage, self.bucket, self.invoker.secret_values):
            log.warning(
                "activation %s (%s) was interrupted by the runtime's death; recorded as %s",
                record.activationId,
                record.action,
                record.status,
            )
        for rules in self.rules.values():
            for rule in rules:
                if not _module_exists(self.targets[rule["action"]]):
                    log.warning(
                        "rule '%s': action module for '%s' not found; its invocations will fail",
                        rule["name"],
                        self.targets[rule["action"]],
                    )
        for rules in self.rules.values():
            for rule in rules:
                self.invoker.prewarm(rule["action"], self.targets[rule["action"]])
        for part in self._parts:
            if isinstance(part, AlarmScheduler):
                part.mark_started()  # before the reaper pass: a runtime killed during it still catches up
        self._reap_first()
        started = []
        try:
            for part in self._parts:
                part.start()
                started.append(part)
        except BaseException:
            for part in reversed(started):
                part.stop()
            raise
        names = ", ".join(sorted(self.rules)) or "none"
        log.info(
            "ephemera up: %d rule(s) on trigger(s) %s; state bucket '%s' (%s)",
            sum(map(len, self.rules.values())),
            names,
            self.bucket,
            self.storage.backend,
        )
        for part in self._parts:
            if isinstance(part, AlarmScheduler) and part.next_fire():
                log.info("next alarm at %s", part.next_fire().isoformat())

    def _reap_first(self) -> None:
        """One reaper pass before any trigger runs: what happened while no runtime ran
        (a marker written, an apply killed, a deadline passed) is handled now, not at
        the first reaper alarm a whole interval later."""
        if REAPER_TRIGGER not in self.rules:
            return
        log.info("ephemera up: reaping what happened while it was not running")
        params = {"ephemera_kind": "alarm", "ephemera_trigger": REAPER_TRIGGER, "ephemera_time": now_utc().isoformat()}
        for future in self.dispatch(REAPER_TRIGGER, params):
            try:
                future.result(timeout=float(self.config.timeouts.action) + 30)
            except Exception:  # its activation records what went wrong; the alarm reaps again
                log.exception("the start-up reaper pass failed")

    def _check_buckets(self) -> None:
        """The state bucket exists (made where buckets cost nothing, said when new: a typo
        would otherwise start an empty ledger silently); a watched bucket that does not
        exist is named (nothing fires until something writes there)."""
        watched = sorted(
            {t.bucket or self.bucket for t in self.config.triggers if t.kind == "object_write" and t.name in self.rules}
            - {self.bucket}
        )
        for bucket in watched:
            if not self.storage.bucket_exists(bucket):
                log.warning(
                    "bucket '%s' (watched by trigger(s) %s) does not exist: nothing fires until something "
                    "writes there; if that is a typo, fix the trigger's 'bucket' (the state bucket is '%s')",
                    bucket,
                    ", ".join(t.name for t in self.config.triggers if t.bucket == bucket),
                    self.bucket,
                )
        if self.storage.traits.buckets_on_demand:
            if self._new_state_bucket:
                log.warning(
                    "state bucket '%s' did not exist: made it, empty (no runs yet); if you meant another, fix storage.bucket",
                    self.bucket,
                )
                self._new_state_bucket = False
            self.storage.create_bucket(self.bucket)
        elif not self.storage.bucket_exists(self.bucket):
            raise ConfigError(
                "storage.bucket",
                f"bucket '{self.bucket}' does not exist or is not reachable",
                "create it, or fix the name and credentials",
            )

    def dispatch(self, trigger: str, event_params: dict) -> list:
        """Invoke every rule bound to ``trigger`` with these event params; returns the
        futures of the invocations (each resolves to its Activation)."""
        futures = []
        for rule in self.rules.get(trigger, []):
            params = {**rule["params"], **event_params, "config": self._config_dict}
            try:
                futures.append(
                    self.invoker.submit(
                        trigger=trigger,
                        rule=rule["name"],
                        action=rule["action"],
                        target=self.targets[rule["action"]],
                        params=params,
                        event=event_params,
                    )
                )
            except RuntimeError:
                log.warning("rule '%s': not invoked, the runtime is stopping", rule["name"])
                raise
        return futures

    def stop(self) -> None:
        """Stop firing, then wait for running invocations (each ends by its timeout)."""
        for part in reversed(self._parts):
            try:
                part.stop()
            except Exception:
                log.exception("stopping %s failed", type(part).__name__)
        self.invoker.shutdown(wait=True)


def run_up(
    config,
    *,
    stop: threading.Event | None = None,
    until: Callable[[], bool] | None = None,
    handle_signals: bool = False,
    **options,
) -> None:
    """Run the config's triggers and rules until ``stop`` is set or ``until()`` is
    true (checked every 100 ms), then shut down cleanly. ``options`` are
    :class:`Runtime`'s keyword arguments (action_targets, reap_interval, catch_up,
    poll_interval, watch, max_concurrent, on_activation, warm, lanes, since), with its defaults.

    ``handle_signals`` (the CLI sets it): the first SIGINT/SIGTERM stops firing and
    waits for running actions; a second one kills them."""
    config = load_config(config)
    stop = stop if stop is not None else threading.Event()
    runtime = Runtime(config, **options)
    restore = _install_signals(stop, runtime) if handle_signals else None
    try:
        runtime.start()
        while not stop.is_set():
            if until is not None and until():
                break
            stop.wait(0.1)
    finally:
        log.info("ephemera up: stopping; waiting for running actions")
        runtime.stop()
        if restore:
            restore()
        log.info("ephemera up: stopped")


def _install_signals(stop: threading.Event, runtime: Runtime) -> Callable[[], None] | None:
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, _frame):
        # A handler runs in the main thread between two bytecodes, maybe while it holds a
        # lock (a warm pool's, the invoker's, in shutdown): taking one here would wait
        # forever and the second Ctrl-C would seem ignored. Killing is done by a thread.
        if stop.is_set():
            log.warning("second %s: killing running actions", signal.Signals(signum).name)
            threading.Thread(target=runtime.invoker.kill_all, name="ephemera-kill-all", daemon=True).start()
        else:
            log.warning("%s: stopping after running actions finish (again to kill them)", signal.Signals(signum).name)
            stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
