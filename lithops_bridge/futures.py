"""Futures: ``ResponseFuture`` (one function call) and ``FuturesList``.

A future is resolved by its backend from another thread (localhost pool callbacks,
the standalone storage follower) through ``_set_result``/``_set_error``; callers
block on it with ``result()``/``status()`` or the module-level ``wait``.
States and attribute names follow Lithops 3.x (``done``, ``success``, ``error``,
``ready``, ``running``, ``stats``, ``_produce_output`` ...).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from lithops_bridge.outcomes import FunctionError, apply_outcome, returned_stats

__all__ = ["FunctionError", "FuturesList", "RemoteTraceback", "ResponseFuture", "apply_outcome"]

_LOCK = threading.Lock()  # orders a future's finishing against waiters and callbacks being added


class RemoteTraceback(Exception):
    """Carries the traceback text of an exception raised in a remote function call.

    Set as ``__cause__`` of the re-raised exception, so printing it shows where the
    function failed on the worker."""

    def __init__(self, tb: str):
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


class ResponseFuture:
    """The result of one function call, in the Lithops shape."""

    class State:
        New = "New"
        Invoked = "Invoked"
        Running = "Running"
        Ready = "Ready"
        Success = "Success"
        Error = "Error"
        Done = "Done"
        Unknown = "Unknown"

    def __init__(
        self,
        executor_id: str,
        job_id: str,
        call_id: int,
        function_name: str = "",
        execution_timeout: float | None = None,
        submitted: float | None = None,
        group: Any = None,
    ):
        """``submitted``: the job's submit time (one ``time.time()`` per job, not per call);
        ``group``: the job's :class:`~lithops_bridge.waiting.Group` (one per job, shared by its futures)."""
        self.executor_id = executor_id
        self.job_id = job_id
        self.call_id = call_id
        self.function_name = function_name
        self.execution_timeout = execution_timeout
        self._submitted = submitted if submitted is not None else time.time()  # Lithops' host_submit_tstamp
        self._group = group
        # the other attributes start at the class-level defaults below (a map makes one
        # future per call: each attribute set here is paid 100,000 times)

    @property
    def job_key(self) -> str:
        return f"{self.executor_id}-{self.job_id}"

    @property
    def stats(self) -> dict[str, Any]:
        """Lithops' stats dict of the call (a real dict, built on first read: a returned
        call of a batch keeps only its place in the batch's compact outcome until then)."""
        stats = self._stats
        if stats is None:
            with _LOCK:  # against _finish_returned filling it in
                stats = self._stats
                if stats is None:
                    stats = self._stats = {"host_submit_tstamp": self._submitted}
                    self._fill_returned(stats)
        return stats

    @stats.setter
    def stats(self, value: dict[str, Any]) -> None:
        self._stats = value

    def _fill_returned(self, stats: dict[str, Any]) -> None:
        """Move a returned call's compact outcome and finish time into ``stats`` (under _LOCK)."""
        if self._returned is not None:
            stats.update(returned_stats(self._returned, self._value))
            self._returned = None
        if self._done_at is not None and "host_result_done_tstamp" not in stats:
            stats["host_status_done_tstamp"] = stats["host_result_done_tstamp"] = self._done_at

    activation_id: str | None = None
    logs: str | None = None
    _state = State.New
    _produce_output = True  # its result is part of get_result()
    _read = False  # get_result() without futures returned it already
    _value: Any = None
    _exception: BaseException | None = None
    _traceback: str | None = None
    _done = False  # finished (a value or an exception is in); set under _LOCK
    _stats: dict[str, Any] | None = None  # Lithops' stats, once built (see ``stats``)
    _returned: tuple | None = None  # a returned call's ((times, host, pid), position) in its batch, until stats are built
    _done_at: float | None = None  # when a returned call of a batch finished, until stats are built
    # Made only when someone waits on or watches this very future (under _LOCK): a map
    # of 100,000 calls would otherwise build 100,000 Events (a Condition and a lock each).
    _event: threading.Event | None = None
    _callbacks: list | None = None

    # --- pickling: a future that travels (e.g. as iterdata) carries its outcome only ---
    def __getstate__(self) -> dict:
        stats = self.stats  # built before the compact outcome it is made of is dropped
        state = self.__dict__.copy()
        state.update(_stats=stats, _returned=None, _event=None, _callbacks=None, _group=None)
        return state

    def __setstate__(self, state: dict) -> None:
        if "stats" in state:  # pickled by an earlier version: stats was a plain attribute
            state["_stats"] = state.pop("stats")
        state.pop("job_key", None)
        state.setdefault("_submitted", (state.get("_stats") or {}).get("host_submit_tstamp"))
        state.setdefault(
            "_done", state.get("_state") in (self.State.Done, self.State.Error, self.State.Success, self.State.Unknown)
        )
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"<ResponseFuture {self.job_key} call {self.call_id:05d} {self._state}>"

    # --- state, as Lithops names it ------------------------------------------------
    @property
    def new(self) -> bool:
        return self._state == self.State.New

    @property
    def invoked(self) -> bool:
        return self._state == self.State.Invoked

    @property
    def running(self) -> bool:
        return self._state == self.State.Running

    @property
    def ready(self) -> bool:
        return self._state == self.State.Ready

    @property
    def error(self) -> bool:
        return self._state == self.State.Error

    @property
    def success(self) -> bool:
        return self._state in (self.State.Success, self.State.Error)

    @property
    def done(self) -> bool:
        return self._state in (self.State.Done, self.State.Error, self.State.Unknown)

    @property
    def futures(self) -> bool:
        """Lithops: True when the call returned futures. The bridge resolves returned
        futures on the worker, so the value is already their results."""
        return False

    def cancel(self) -> None:
        raise NotImplementedError("Lithops futures cannot be cancelled")

    def cancelled(self) -> bool:
        return False

    # --- resolution (backend side) -------------------------------------------------
    def _set_invoked(self) -> None:
        if self._state == self.State.New:
            self._state = self.State.Invoked

    def _set_result(self, value: Any, stats: dict | None = None) -> None:
        """Status and value are in (Lithops' Success); reading the result makes it Done."""
        self._value = value
        self._finish(self.State.Success, stats)

    def _finished(self) -> bool:
        return self._done

    def _mark_read(self) -> None:
        if self._state == self.State.Success:
            self._state = self.State.Done

    def _set_error(self, exc: BaseException, tb: str | None, stats: dict | None = None) -> None:
        self._exception = exc
        self._traceback = tb
        self._finish(self.State.Error, stats)

    def _finish(self, state: str, stats: dict | None) -> None:
        mine = self.stats
        if stats:
            mine.update(stats)
        if "host_result_done_tstamp" not in mine:
            mine["host_status_done_tstamp"] = mine["host_result_done_tstamp"] = time.time()
        with _LOCK:  # a waiter or callback added concurrently is served exactly once
            self._state = state
            self._done = True
            event, callbacks, group = self._event, self._callbacks, self._group
            if callbacks is not None:
                self._callbacks = None
            wake = [w for w in group.watchers if w.seen(self)] if group is not None and group.watchers else None
        if wake:
            for waiter in wake:
                waiter.wake()
        if event is not None:
            event.set()
        if callbacks:
            for cb in callbacks:
                cb(self)

    @staticmethod
    def _finish_returned(futures: list["ResponseFuture"]) -> None:
        """Lithops' Success for ``futures`` whose value and stats are in: one clock read
        and one round under ``_LOCK`` for a batch, not one per call."""
        now = time.time()
        wake: list = []
        events: list[threading.Event] = []
        calls: list[tuple["ResponseFuture", list]] = []
        with _LOCK:  # as in _finish: a waiter or callback added concurrently is served exactly once
            for f in futures:
                f._done_at = now
                if f._stats is not None:  # already read: fill it in now, else when it is read
                    f._fill_returned(f._stats)
                f._state = f.State.Success
                f._done = True
                if f._event is not None:
                    events.append(f._event)
                if f._callbacks is not None:
                    calls.append((f, f._callbacks))
                    f._callbacks = None
                group = f._group
                if group is not None and group.watchers:
                    for w in group.watchers:
                        if w.seen(f):
                            wake.append(w)
        for waiter in wake:
            waiter.wake()
        for event in events:
            event.set()
        for f, callbacks in calls:
            for cb in callbacks:
                cb(f)

    @property
    def _call_status(self) -> dict | None:
        """Lithops' status dict of a finished call (built when asked for, not per call)."""
        if not self._done:
            return None
        return {
            "type": "__end__",
            "exception": self._state == self.State.Error,
            "call_id": self.call_id,
            "executor_id": self.executor_id,
            "job_id": self.job_id,
            **self.stats,
        }

    def _set_mapreduce(self) -> None:
        """Map futures of a map_reduce produce no output of their own in get_result."""
        self._produce_output = False

    def _add_done_callback(self, cb) -> None:
        """Call ``cb(self)`` once the future is finished (now, if it already is)."""
        with _LOCK:
            if not self._done:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(cb)
                return
        cb(self)

    def _remove_done_callback(self, cb) -> None:
        with _LOCK:
            try:
                if self._callbacks:
                    self._callbacks.remove(cb)
            except ValueError:
                pass

    def _wait(self, timeout: float | None = None) -> bool:
        if self._done:
            return True
        with _LOCK:
            if self._done:
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        return event.wait(timeout)

    # --- caller side ------------------------------------------------------------------
    def status(
        self, throw_except: bool = True, internal_storage: Any = None, check_only: bool = False, wait_dur_sec: float = 1
    ) -> dict | None:
        """The call's status dict (stats); raises the call's exception if it failed."""
        if self._state == self.State.New:
            raise ValueError("task not yet invoked")
        if check_only and not self._done:
            return None
        self._wait()
        if self._state == self.State.Error:
            if throw_except:
                self._raise()
            return None
        return self._call_status

    def result(self, throw_except: bool = True, internal_storage: Any = None, retries: int = 10, wait_dur_sec: float = 1) -> Any:
        """The value the function returned; re-raises its exception (remote traceback as cause)."""
        if self._state == self.State.New:
            raise ValueError("Task not yet invoked")
        self._wait()
        if self._state == self.State.Error:
            if throw_except:
                self._raise()
            return None
        self._mark_read()
        return self._value

    def exception(self) -> BaseException | None:
        self._wait()
        return self._exception

    def _raise(self) -> None:
        exc = self._exception
        assert exc is not None
        if self._traceback and not isinstance(exc.__cause__, RemoteTraceback):
            exc.__cause__ = RemoteTraceback(self._traceback)
        raise exc


from lithops_bridge.futures_list import FuturesList  # noqa: E402 - re-exported here, as Lithops has it
