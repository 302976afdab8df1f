"""What a worker sends back for each call, and how a future is resolved from it.

A call that failed is a dict (``ok: False``, the pickled exception when it pickles,
its type, module, message and traceback, and its stats). A call that returned is, as
the runner makes it, the compact tuple :data:`OK_FIELDS` (no dict per call: unpickling
100,000 dicts of stats was a tenth of a no-op map); :func:`as_dict` spells it out as the
dict form (``ok: True``, ``value``, ``stats``) where it travels as JSON (standalone
result slots). :func:`apply_outcome` takes either form.
"""

from __future__ import annotations

import builtins
import importlib
import pickle
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for annotations: futures imports this module
    from lithops_bridge.futures import ResponseFuture

# a returned call: (call_id, pickled value, its size (0 for None), start, function start,
# function end, end, worker host, worker pid)
OK_FIELDS = ("call_id", "value", "size", "start", "func_start", "func_end", "end", "host", "pid")


def ok_stats(outcome: tuple) -> dict[str, Any]:
    """Lithops' stats of a returned call, from its compact outcome."""
    _cid, _blob, size, start, fstart, fend, end, host, pid = outcome
    return {
        "worker_start_tstamp": start,
        "worker_pid": pid,
        "worker_host": host,
        "worker_func_start_tstamp": fstart,
        "worker_func_end_tstamp": fend,
        "worker_func_exec_time": round(fend - fstart, 8),
        "func_result_size": size,
        "worker_end_tstamp": end,
        "worker_exec_time": round(end - start, 8),
    }


def call_id_of(outcome: Any) -> int:
    """The call an outcome (either form) is the outcome of."""
    return outcome[0] if type(outcome) is tuple else outcome["call_id"]


def as_dict(outcome: Any) -> dict:
    """The dict form of an outcome (a failed call's dict is returned as is)."""
    if isinstance(outcome, dict):
        return outcome
    return {"call_id": outcome[0], "ok": True, "value": outcome[1], "stats": ok_stats(outcome)}


class FunctionError(Exception):
    """A remote exception that could not be rebuilt with its own type (unpicklable)."""

    def __init__(self, type_name: str, message: str):
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message

    def __reduce__(self):
        return FunctionError, (self.type_name, self.message)


def _rebuild_exception(outcome: dict) -> BaseException:
    if outcome.get("exc") is not None:
        try:
            return pickle.loads(outcome["exc"])
        except Exception:  # noqa: BLE001 - fall back to the type by name
            pass
    name, module, message = (
        outcome.get("exc_type", "Exception"),
        outcome.get("exc_module", "builtins"),
        outcome.get("exc_message", ""),
    )
    try:
        cls = getattr(builtins, name) if module == "builtins" else getattr(importlib.import_module(module), name)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            return cls(message)
    except Exception:  # noqa: BLE001
        pass
    return FunctionError(name, message)


def apply_outcome(future: "ResponseFuture", outcome: Any, extra_stats: dict | None = None) -> None:
    """Resolve ``future`` from a call's outcome (either form, see the module docstring)."""
    if type(outcome) is tuple:
        try:
            value = pickle.loads(outcome[1])
        except Exception as exc:  # noqa: BLE001 - e.g. a class the caller cannot import
            future._set_error(exc, None, extra_stats)
            return
        stats = ok_stats(outcome)
        if extra_stats:
            stats.update(extra_stats)
        future._set_result(value, stats)
        return
    stats = outcome.get("stats")
    if extra_stats:
        stats = {**(stats or {}), **extra_stats}
    if outcome.get("ok"):
        try:
            value = pickle.loads(outcome["value"])
        except Exception as exc:  # noqa: BLE001 - e.g. a class the caller cannot import
            future._set_error(exc, None, stats)
            return
        future._set_result(value, stats)
    else:
        future._set_error(_rebuild_exception(outcome), outcome.get("traceback"), stats)


def apply_outcomes(futures: list, outcomes: list) -> None:
    """:func:`apply_outcome` for a batch's futures (those already finished are left
    alone): returned calls are finished together (``ResponseFuture._finish_returned``)."""
    returned = []
    for future, outcome in zip(futures, outcomes):
        if future._done:
            continue
        if type(outcome) is not tuple:
            apply_outcome(future, outcome)
            continue
        try:
            value = pickle.loads(outcome[1])
        except Exception as exc:  # noqa: BLE001 - e.g. a class the caller cannot import
            future._set_error(exc, None, None)
            continue
        future.stats.update(ok_stats(outcome))
        future._value = value
        returned.append(future)
    if returned:
        type(returned[0])._finish_returned(returned)
