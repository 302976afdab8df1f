"""Runs function calls on a worker process (a localhost pool process or a VM agent's).

A :class:`Batch` carries the cloudpickled function (serialized once per job; cached
here per process after its first load), the calls' argument dicts, and what the
calls need injected. :func:`run_batch` runs each call and returns one outcome per
call (``lithops_bridge.outcomes``): the pickled value, or the exception (pickled when
possible) with its formatted traceback, and what Lithops' stats are made of. Futures a function returns are
resolved here, so the caller receives their values. A per-call ``timeout`` raises
``TimeoutError`` inside the function (SIGALRM, main thread only).
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
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import cloudpickle

from lithops_bridge.futures import ResponseFuture
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
    data: list[bytes]  # cloudpickled argument dict of each call, same order
    extra_env: dict = field(default_factory=dict)  # environment set around each call
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


def run_batch(batch: Batch) -> list[dict]:
    """Run every call of the batch; never raises for a call's own failure."""
    try:
        func = load_function(batch.job_key, batch.func, batch.modules)
    except Exception as exc:  # noqa: BLE001 - e.g. its module is not importable here: every call fails with it
        blob, pickle_error = _dump_exception(exc)
        return [
            {
                "call_id": cid,
                "ok": False,
                "exc": blob,
                "exc_type": type(exc).__name__,
                "exc_module": type(exc).__module__,
                "exc_message": str(exc),
                "traceback": traceback.format_exc(),
                "pickle_error": pickle_error,
                "stats": {"exception": True},
            }
            for cid in batch.call_ids
        ]
    plan = _Plan(func, batch)
    if plan.plain and not batch.extra_env and not batch.timeout:
        return _run_plain(func, batch, plan)
    return [run_call(func, cid, data, batch, plan) for cid, data in zip(batch.call_ids, batch.data)]


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
    """Raises TimeoutError in the calling (main) thread after ``seconds``."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.armed = bool(seconds) and threading.current_thread() is threading.main_thread()

    def _fire(self, signum, frame):  # noqa: ARG002
        raise TimeoutError(f"function exceeded its timeout of {self.seconds} seconds")

    def __enter__(self):
        if self.armed:
            self.previous = signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, float(self.seconds))
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
    """Sets extra environment variables around one call and restores them."""

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


def run_call(func: Callable, call_id: int, raw: bytes, batch: Batch, plan: _Plan | None = None) -> Any:
    """Run one call; its outcome (``lithops_bridge.outcomes``: a tuple if it returned)."""
    plan = plan or _Plan(func, batch)
    start = fstart = time.time()
    try:
        data = pickle.loads(raw)
        with _Env(batch.extra_env) if batch.extra_env else _NO_ENV:
            args, kwargs = _prepare(func, call_id, data, batch, plan)
            fstart = time.time()
            if batch.timeout:
                with _Alarm(batch.timeout):
                    value = func(*args, **kwargs)
            else:
                value = func(*args, **kwargs)
            if isinstance(value, (ResponseFuture, list)):
                value = _resolve_futures(value)
            fend = time.time()
        result = dumps(value)
    except BaseException as exc:  # noqa: BLE001 - the caller gets every failure
        if isinstance(exc, KeyboardInterrupt):
            raise
        return _failure(call_id, exc, {"worker_start_tstamp": start, "worker_pid": plan.pid, "worker_host": plan.host})
    size = len(result) if value is not None else 0
    return (call_id, result, size, start, fstart, fend, time.time(), plan.host, plan.pid)


def _run_plain(func: Callable, batch: Batch, plan: _Plan) -> list:
    """:func:`run_call` over the batch, for a function with nothing to inject and a job
    with no environment or timeout: the same outcomes, with no per-call set-up."""
    out: list = []
    host, pid, by_value, now = plan.host, plan.pid, by_value_modules(), time.time
    for cid, raw in zip(batch.call_ids, batch.data):
        start = now()
        try:
            data = pickle.loads(raw)
            if UPSTREAM_ERROR in data or "obj" in data:  # something to raise or to open first
                out.append(run_call(func, cid, raw, batch, plan))
                continue
            fstart = now()
            value = func(**data)
            if isinstance(value, (ResponseFuture, list)):
                value = _resolve_futures(value)
            fend = now()
            result = dumps(value, by_value)
        except BaseException as exc:  # noqa: BLE001 - the caller gets every failure
            if isinstance(exc, KeyboardInterrupt):
                raise
            out.append(_failure(cid, exc, {"worker_start_tstamp": start, "worker_pid": pid, "worker_host": host}))
            continue
        out.append((cid, result, len(result) if value is not None else 0, start, fstart, fend, now(), host, pid))
    return out
