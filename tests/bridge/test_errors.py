"""Exceptions survive the trip back from a worker, and futures resolve exactly once."""

from __future__ import annotations

import pickle
import threading

import cloudpickle
import pytest

from ephemera.errors import (
    ConfigError,
    EngineError,
    EventError,
    FieldError,
    NoSuchBucketError,
    NoSuchKeyError,
    ParamError,
    RunNotFoundError,
    WorkspaceBusyError,
)
from lithops_bridge.errors import BridgeError
from lithops_bridge.futures import FunctionError, ResponseFuture, apply_outcome
from lithops_bridge.runner import Batch, run_batch
from lithops_bridge.storage.utils import StorageNoSuchKeyError

ERRORS = [
    ConfigError("ibm_cos.region", "missing", "set the COS region"),
    ParamError("run_id", "empty"),
    EventError("body.key", "not a string", "send the object key"),
    FieldError("x", "bad"),
    NoSuchKeyError("bucket-a", "some/key"),
    NoSuchBucketError("bucket-b"),
    RunNotFoundError("run-42"),
    EngineError("apply failed", retryable=True, log_tail="last lines"),
    WorkspaceBusyError("locked"),
    StorageNoSuchKeyError("bucket-c", "k/1"),
    FunctionError("Unpicklable", "x/y"),
    BridgeError("agent gone"),
]


@pytest.mark.parametrize("exc", ERRORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_errors_round_trip_through_pickle(exc, dumps):
    back = pickle.loads(dumps(exc))
    assert type(back) is type(exc)
    assert str(back) == str(exc) and back.args == exc.args
    assert back.__dict__ == exc.__dict__  # field, bucket, key, log_tail, retryable, type_name ...


def _raise(exc):
    raise exc


@pytest.mark.parametrize("exc", ERRORS, ids=lambda e: type(e).__name__)
def test_an_error_raised_in_a_call_reaches_the_caller_with_its_type(exc):
    outcome = run_batch(Batch("job-1", cloudpickle.dumps(_raise), [0], cloudpickle.dumps([{"exc": exc}]))).failures[0]
    assert outcome["ok"] is False and outcome["exc"] is not None, outcome.get("pickle_error")
    fut = ResponseFuture("ex", "A000", 0)
    fut._set_invoked()
    apply_outcome(fut, outcome)
    with pytest.raises(type(exc)) as info:
        fut.result()
    assert type(info.value) is type(exc) and str(info.value) == str(exc)


def test_a_callback_added_while_the_future_finishes_runs_once():
    """_add_done_callback racing _finish (another thread) must call the callback exactly once."""
    fut = ResponseFuture("ex", "A000", 0)
    fut._set_invoked()
    calls = []
    finisher: list[threading.Thread] = []

    class RacingList(list):
        def append(self, cb):  # the future finishes on another thread right as the callback is added
            super().append(cb)
            t = threading.Thread(target=fut._set_result, args=(1,))
            finisher.append(t)
            t.start()
            t.join(0.5)  # with the lock, the finisher waits for us; without it, it has finished here

    fut._callbacks = RacingList()
    fut._add_done_callback(calls.append)
    finisher[0].join()
    assert calls == [fut]
    assert fut.result() == 1
