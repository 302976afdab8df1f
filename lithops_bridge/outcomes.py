"""What a worker sends back for a batch of calls, and how futures are resolved from it.

A call that failed is a dict (``ok: False``, the pickled exception when it pickles,
its type, module, message and traceback, and its stats). A batch whose calls ran is a
:class:`BatchOutcome`: the values the calls returned pickled as **one** object, their
four timestamps in one array, where they ran once, and the failed calls' dicts by
position (a batch that could not run at all is a list of failure dicts). Lithops'
per-call stats dict is built from it when someone reads ``future.stats``
(:func:`returned_stats`), not per call: shipping, unpickling and resolving 100,000
calls one object each was most of a no-op map. The compact tuple :data:`OK_FIELDS`
(one returned call) and the dict form are still understood by :func:`apply_outcome`.
"""

from __future__ import annotations

import base64
import builtins
import importlib
import pickle
from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lithops_bridge.pickling import dumps

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


TIMES = 4  # timestamps per call in BatchOutcome.times: start, function start, function end, end


@dataclass
class BatchOutcome:
    """The outcome of a batch whose calls ran (each returned or raised)."""

    call_ids: list[int]  # the batch's calls, in order
    values: bytes  # one pickle of the list of returned values (None where a call failed)
    times: bytes  # array("d") of TIMES timestamps per call, flat, in call order
    host: str  # the worker_host stat of every call
    pid: int  # the worker_pid stat of every call
    failures: dict[int, dict] = field(default_factory=dict)  # position in the batch -> that call's failure dict

    def to_json(self) -> dict:
        """A JSON-able dict (pickled fields as base64): a standalone result slot's outcomes."""
        return {
            "call_ids": self.call_ids,
            "values": base64.b64encode(self.values).decode(),
            "times": base64.b64encode(self.times).decode(),
            "host": self.host,
            "pid": self.pid,
            "failures": {str(i): _blobs_out(o) for i, o in self.failures.items()},
        }

    @classmethod
    def from_json(cls, body: dict) -> "BatchOutcome":
        return cls(
            [int(c) for c in body["call_ids"]],
            base64.b64decode(body["values"]),
            base64.b64decode(body["times"]),
            str(body["host"]),
            int(body["pid"]),
            {int(i): _blobs_in(o) for i, o in body.get("failures", {}).items()},
        )


_BLOBS = ("value", "exc")  # outcome dict fields holding pickled bytes


def _blobs_out(outcome: dict) -> dict:
    return {k: base64.b64encode(v).decode() if k in _BLOBS and isinstance(v, bytes) else v for k, v in outcome.items()}


def _blobs_in(outcome: dict) -> dict:
    return {k: base64.b64decode(v) if k in _BLOBS and isinstance(v, str) else v for k, v in outcome.items()}


def outcomes_to_json(outcomes: Any) -> Any:
    """A batch's outcomes (either form) as JSON-able data; :func:`outcomes_from_json` reverses it."""
    if isinstance(outcomes, BatchOutcome):
        return outcomes.to_json()
    return [_blobs_out(as_dict(o)) for o in outcomes]


def outcomes_from_json(data: Any) -> Any:
    if isinstance(data, dict):
        return BatchOutcome.from_json(data)
    return [_blobs_in(o) for o in data]


def outcome_call_ids(outcomes: Any) -> list[int]:
    """The calls a batch's outcomes (either form) are the outcomes of."""
    if isinstance(outcomes, BatchOutcome):
        return list(outcomes.call_ids)
    return [call_id_of(o) for o in outcomes]


def returned_stats(returned: tuple, value: Any) -> dict[str, Any]:
    """Lithops' worker stats of a returned call from ``((times, host, pid), position in
    its batch)`` (as :func:`apply_outcomes` leaves it on the future) and its value:
    ``func_result_size`` is the size of the value pickled on its own (0 for None),
    worked out here, when the stats are read."""
    (times, host, pid), pos = returned
    i = pos * TIMES
    start, fstart, fend, end = times[i], times[i + 1], times[i + 2], times[i + 3]
    return {
        "worker_start_tstamp": start,
        "worker_pid": pid,
        "worker_host": host,
        "worker_func_start_tstamp": fstart,
        "worker_func_end_tstamp": fend,
        "worker_func_exec_time": round(fend - fstart, 8),
        "func_result_size": 0 if value is None else len(_size_pickle(value)),
        "worker_end_tstamp": end,
        "worker_exec_time": round(end - start, 8),
    }


def _size_pickle(value: Any) -> bytes:
    try:
        return dumps(value)
    except Exception:  # noqa: BLE001 - it travelled in its batch; alone it may not pickle
        return b""


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


def apply_outcomes(futures: list, outcomes: Any) -> None:
    """Resolve a batch's futures (in call order) from its outcomes: a
    :class:`BatchOutcome` or a list of per-call outcomes. Futures already finished (a
    late duplicate) are left alone; returned calls are finished together
    (``ResponseFuture._finish_returned``), their stats left to be built when read."""
    if isinstance(outcomes, BatchOutcome):
        _apply_batch(futures, outcomes)
        return
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


def _apply_batch(futures: list, outcome: BatchOutcome) -> None:
    failures = outcome.failures
    try:
        values = pickle.loads(outcome.values)
    except Exception as exc:  # noqa: BLE001 - e.g. a class the caller cannot import: the batch's values travel as one
        for pos, future in enumerate(futures):
            if not future._done:
                if pos in failures:
                    apply_outcome(future, failures[pos])
                else:
                    future._set_error(exc, None, None)
        return
    times: "array[float]" = array("d")
    times.frombytes(outcome.times)
    meta = (times, outcome.host, outcome.pid)  # what the lazy stats are made of, shared by the batch
    returned = []
    for pos, future in enumerate(futures):
        if future._done:
            continue
        if failures and pos in failures:
            apply_outcome(future, failures[pos])
            continue
        future._value = values[pos]
        future._returned = (meta, pos)
        returned.append(future)
    if returned:
        type(returned[0])._finish_returned(returned)
