"""Runs function calls on a worker process (a localhost pool process or a VM agent's).

A :class:`Batch` carries the cloudpickled function (serialized once per job; cached
here per process after its first load), the calls' argument dicts pickled as one
object, and what the calls need injected. :func:`run_batch` runs each call and
returns the batch's :class:`~lithops_bridge.outcomes.BatchOutcome`: the returned
values pickled as one object, each call's timestamps, and each failed call's
exception (pickled when possible) with its formatted traceback. Futures a function
returns are resolved here, so the caller receives their values. A per-call
``timeout`` raises ``TimeoutError`` inside the function (SIGALRM, main thread only).
"""

from __future__ import annotations

import inspect
import os
import pickle
import signal
import socket
import threading
import time
import traceback
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import cloudpickle

from lithops_bridge.futures import ResponseFuture
from lithops_bridge.outcomes import BatchOutcome
from lithops_bridge.pickling import by_value_modules, dumps

# (job_key, the function's pickle) -> loaded function (this process): keyed by the bytes
# too, so two jobs that happen to share a key never run each other's function
_FUNCS: "OrderedDict[tuple[str, bytes], Callable]" = OrderedDict()
_FUNC_CACHE_SIZE = 16
_STORAGES: dict[str, Any] = {}  # storage config fingerprint -> lithops_bridge.Storage
UPSTREAM_ERROR = "__lithops_bridge_upstream_error__"  # data key of a chained call whose input future failed


@dataclass
class Batch:
    """Calls of one job sent to one worker in one message."""

    job_key: str  # "<executor_id>-<job_id>"
    func: bytes  # cloudpickled function (loaded once per process per job)
    call_ids: list[int]  # the calls in this batch
    data: bytes  # the argument dict of each call, same order, pickled as one list (Job.pack)
    extra_env: dict = field(default_factory=dict)  # environment set around the batch's calls (restored after)
    timeout: float | None = None  # seconds a call may run before TimeoutError
    storage_config: dict | None = None  # bridge storage config for an injected `storage`
    worker_label: str = ""  # where it ran, for stats ("localhost", "vm-1")
    modules: dict = field(default_factory=dict)  # {relative path: source} installed before the function loads


def load_function(job_key: str, func: bytes, modules: dict | None = None) -> Callable:
    key = (job_key, func)
    fn = _FUNCS.get(key)
    if fn is None:
        from lithops_bridge.modules import install

        install(modules)
        fn = cloudpickle.loads(func)
        _FUNCS[key] = fn
        while len(_FUNCS) > _FUNC_CACHE_SIZE:
            _FUNCS.popitem(last=False)
    else:
        _FUNCS.move_to_end(key)
    return fn


def _all_failed(call_ids: list[int], exc: BaseException) -> list[dict]:
    """Every call of a batch failed with ``exc`` (call inside its ``except``: the traceback is read here)."""
    blob, pickle_error = _dump_exception(exc)
    tb = traceback.format_exc()
    return [
        {
            "call_id": cid,
            "ok": False,
            "exc": blob,
            "exc_type": type(exc).__name__,
            "exc_module": type(exc).__module__,
            "exc_message": str(exc),
            "traceback": tb,
            "pickle_error": pickle_error,
            "stats": {"exception": True},
        }
        for cid in call_ids
    ]


def run_batch(batch: Batch) -> BatchOutcome | list[dict]:
    """Run every call of the batch; never raises for a call's own failure. A function
    that does not load here, or arguments that do not unpickle (they travel as one
    object), fail every call of the batch with that error (a list of failure dicts)."""
    try:
        func = load_function(batch.job_key, batch.func, batch.modules)
        datas = pickle.loads(batch.data)
    except Exception as exc:  # noqa: BLE001 - e.g. its module is not importable here: every call fails with it
        return _all_failed(batch.call_ids, exc)
    plan = _Plan(func, batch)
    values: list = []
    times: "array[float]" = array("d")
    failures: dict[int, dict] = {}
    with _Alarm(batch.timeout) as alarm, _Env(batch.extra_env) if batch.extra_env else _NO_ENV:
        if plan.plain:
            _run_plain(func, batch, plan, datas, values, times, failures, alarm)
        else:
            for pos, (cid, data) in enumerate(zip(batch.call_ids, datas)):
                _collect(run_call(func, cid, data, batch, plan, alarm), pos, values, times, failures)
    return BatchOutcome(
        list(batch.call_ids), _dump_values(batch, plan, values, times, failures), times.tobytes(), plan.host, plan.pid, failures
    )


def _collect(result: Any, pos: int, values: list, times: "array[float]", failures: dict) -> None:
    """Add one call's :func:`run_call` result to the batch's accumulators."""
    if type(result) is dict:
        failures[pos] = result
        values.append(None)
        times.extend((0.0, 0.0, 0.0, 0.0))
    else:
        values.append(result[0])
        times.extend(result[1])


def _dump_values(batch: Batch, plan: "_Plan", values: list, times: "array[float]", failures: dict) -> bytes:
    """The batch's returned values as one pickle; a value that does not pickle fails its
    own call (found by pickling each value alone, only when the whole list fails)."""
    by_value = by_value_modules()
    try:
        return dumps(values, by_value)
    except Exception:  # noqa: BLE001 - find the calls whose values do not travel
        pass
    for pos, value in enumerate(values):
        if pos in failures or value is None:
            continue
        try:
            dumps(value, by_value)
        except Exception as exc:  # noqa: BLE001 - the caller gets this call's failure
            stats = {"worker_start_tstamp": times[4 * pos], "worker_pid": plan.pid, "worker_host": plan.host}
            failures[pos] = _failure(batch.call_ids[pos], exc, stats)
            values[pos] = None
    return dumps(values, by_value)


def _storage_for(config: dict | None):
    from lithops_bridge.storage import Storage

    key = repr(sorted((config or {}).items()))
    if key not in _STORAGES:
        _STORAGES[key] = Storage(storage_config=config)
    return _STORAGES[key]


class _Plan:
    """What every call of a batch needs done to its data, worked out once per batch."""

    def __init__(self, func: Callable, batch: Batch):
        params: Mapping[str, inspect.Parameter]
        try:
            params = inspect.signature(func).parameters
        except (TypeError, ValueError):
            params = {}
        self.params = params  # the function's parameters
        self.storage = "storage" in params  # inject a Storage
        self.id = "id" in params  # inject the call id
        self.var_pos = next((n for n, p in params.items() if p.kind == p.VAR_POSITIONAL), None)  # the *args name
        self.var_kw = next((n for n, p in params.items() if p.kind == p.VAR_KEYWORD), None)  # the **kwargs name
        self.pos_only = [n for n, p in params.items() if p.kind == p.POSITIONAL_ONLY]  # passed by position
        self.host = batch.worker_label or socket.gethostname()  # the worker_host stat
        self.pid = os.getpid()  # the worker_pid stat
        # a plain function of plain arguments: its data dict is its keyword arguments as is
        self.plain = not (self.storage or self.id or self.var_pos or self.var_kw or self.pos_only)


def _prepare(func: Callable, call_id: int, data: dict, batch: Batch, plan: _Plan | None = None) -> tuple[tuple, dict]:
    """Inject storage/id/obj, then split the data dict into *args/**kwargs like Lithops."""
    plan = plan or _Plan(func, batch)
    if UPSTREAM_ERROR in data:  # a chained call whose input future failed
        raise data[UPSTREAM_ERROR]
    obj = data.get("obj")
    if plan.plain and (obj is None or not hasattr(obj, "_open")):
        return (), data
    data = dict(data)
    if plan.storage:
        data["storage"] = _storage_for(batch.storage_config)
    if plan.id:
        data["id"] = call_id
    if obj is not None and hasattr(obj, "_open"):
        storage = _storage_for(batch.storage_config)
        if storage.backend != obj.backend:
            from lithops_bridge.storage import Storage

            storage = Storage(backend=obj.backend)
        obj._open(storage)
    var_pos, var_kw = plan.var_pos, plan.var_kw
    positional = [data.pop(n) for n in plan.pos_only if n in data]
    if var_pos in data:
        positional += list(data.pop(var_pos) or ())
    kwargs = dict(data.pop(var_kw) or {}) if var_kw in data else {}
    kwargs.update(data)
    return tuple(positional), kwargs


class _Alarm:
    """Raises TimeoutError in the calling (main) thread when a call of the batch runs
    longer than ``seconds``, with one SIGALRM timer for the whole batch rather than a
    handler and a timer set and reset around every call (four system calls and two
    enum conversions: ~8 µs per call, more than a no-op call itself). The timer is
    armed for ``seconds``; when it fires, it raises if the running call started
    ``seconds`` ago or more, else re-arms itself for what that call has left (or, between
    calls, for ``seconds``: the next call's deadline is later than that)."""

    def __init__(self, seconds: float | None):
        self.seconds = float(seconds or 0)
        self.armed = bool(seconds) and threading.current_thread() is threading.main_thread()
        self.started: float | None = None  # time.monotonic() at the start of the running call

    def begin(self) -> None:
        self.started = time.monotonic()

    def end(self) -> None:
        self.started = None

    def _fire(self, signum, frame):  # noqa: ARG002
        started = self.started
        left = self.seconds if started is None else started + self.seconds - time.monotonic()
        if left > 0:
            signal.setitimer(signal.ITIMER_REAL, left)
            return
        self.started = None
        signal.setitimer(signal.ITIMER_REAL, self.seconds)  # for the next call
        raise TimeoutError(f"function exceeded its timeout of {self.seconds:g} seconds")

    def __enter__(self) -> "_Alarm":
        if self.armed:
            self.previous = signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc):
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)
        return False


class _NoEnv:
    """Stands for :class:`_Env` when a job sets no environment."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NO_ENV = _NoEnv()


class _Env:
    """Sets extra environment variables around a batch's calls and restores them."""

    def __init__(self, env: dict):
        self.env = {str(k): str(v) for k, v in (env or {}).items()}

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        return False


def _resolve_futures(value: Any) -> Any:
    """A function that returns futures (from an executor it made) returns their results."""
    if isinstance(value, ResponseFuture):
        return value.result()
    if isinstance(value, list) and value and all(isinstance(v, ResponseFuture) for v in value):
        from lithops_bridge.wait import get_result

        return get_result(value)
    return value


def _dump_exception(exc: BaseException) -> tuple[bytes | None, str]:
    try:
        blob = cloudpickle.dumps(exc)
        pickle.loads(blob)  # make sure the caller will be able to load it
        return blob, ""
    except Exception as err:  # noqa: BLE001 - unpicklable exceptions are common
        return None, f"{type(err).__name__}: {err}"


def _failure(call_id: int, exc: BaseException, stats: dict) -> dict:
    """The outcome of a call that raised ``exc`` (inside its ``except``: the traceback is read here)."""
    blob, pickle_error = _dump_exception(exc)
    end = time.time()
    stats.update(exception=True, worker_end_tstamp=end, worker_exec_time=round(end - stats["worker_start_tstamp"], 8))
    return {
        "call_id": call_id,
        "ok": False,
        "exc": blob,
        "exc_type": type(exc).__name__,
        "exc_module": type(exc).__module__,
        "exc_message": str(exc),
        "traceback": traceback.format_exc(),
        "pickle_error": pickle_error,
        "stats": stats,
    }


def run_call(func: Callable, call_id: int, data: dict, batch: Batch, plan: _Plan, alarm: _Alarm) -> Any:
    """Run one call: ``(value, (start, function start, function end, end))`` if it
    returned, else its failure dict (``lithops_bridge.outcomes``); ``alarm`` is the
    batch's (entered by :func:`run_batch`)."""
    start = fstart = time.time()
    try:
        args, kwargs = _prepare(func, call_id, data, batch, plan)
        fstart = time.time()
        if alarm.armed:
            alarm.begin()
            try:
                value = func(*args, **kwargs)
            finally:
                alarm.end()
        else:
            value = func(*args, **kwargs)
        if isinstance(value, (ResponseFuture, list)):
            value = _resolve_futures(value)
        fend = time.time()
    except BaseException as exc:  # noqa: BLE001 - the caller gets every failure
        if isinstance(exc, KeyboardInterrupt):
            raise
        return _failure(call_id, exc, {"worker_start_tstamp": start, "worker_pid": plan.pid, "worker_host": plan.host})
    return value, (start, fstart, fend, time.time())


def _run_plain(
    func: Callable, batch: Batch, plan: _Plan, datas: list, values: list, times: "array[float]", failures: dict, alarm: _Alarm
) -> None:
    """:func:`run_call` over the batch, for a function with nothing to inject: the same
    outcomes, with no per-call set-up."""
    host, pid, now = plan.host, plan.pid, time.time
    add_value, add_times = values.append, times.extend
    timed, begin, end = alarm.armed, alarm.begin, alarm.end
    for pos, (cid, data) in enumerate(zip(batch.call_ids, datas)):
        if UPSTREAM_ERROR in data or "obj" in data:  # something to raise or to open first
            _collect(run_call(func, cid, data, batch, plan, alarm), pos, values, times, failures)
            continue
        start = now()
        try:
            if timed:
                begin()
                try:
                    value = func(**data)
                finally:
                    end()
            else:
                value = func(**data)
            if isinstance(value, (ResponseFuture, list)):
                value = _resolve_futures(value)
            fend = now()
        except BaseException as exc:  # noqa: BLE001 - the caller gets every failure
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures[pos] = _failure(cid, exc, {"worker_start_tstamp": start, "worker_pid": pid, "worker_host": host})
            add_value(None)
            add_times((0.0, 0.0, 0.0, 0.0))
            continue
        add_value(value)
        add_times((start, start, fend, fend))
