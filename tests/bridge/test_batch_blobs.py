"""A batch's arguments travel as one pickle and its returned values come back as one,
with a SIGALRM timer per batch and Lithops' stats built when read: what a user sees
(values, exceptions per call, timeouts per call, ``lithops.data_limit`` per call,
``future.stats``) is what it was with one object per call.
"""

from __future__ import annotations

import pickle
import signal
import sys
import threading
import types

import cloudpickle
import pytest

import lithops_bridge as lithops
from lithops_bridge.futures import ResponseFuture
from lithops_bridge.outcomes import BatchOutcome, apply_outcomes
from lithops_bridge.runner import Batch, run_batch
from tests.bridge import funcs
from tests.bridge.test_call_overhead import LITHOPS_STATS


@pytest.fixture
def fexec(tmp_path):
    config = {
        "lithops": {"backend": "localhost", "storage": "localhost", "data_limit": 0.004},  # 4 KiB per call
        "localhost": {"storage_root": str(tmp_path / "storage"), "worker_processes": 2},
    }
    with lithops.FunctionExecutor(config=config) as executor:
        yield executor


def _futures(n: int) -> list[ResponseFuture]:
    futures = [ResponseFuture("e", "M000", i) for i in range(n)]
    for f in futures:
        f._set_invoked()
    return futures


def _batch(func, datas, **kwargs) -> Batch:
    return Batch("job-blobs", cloudpickle.dumps(func), list(range(len(datas))), pickle.dumps(datas), **kwargs)


def _client_only_blob(obj_name: str) -> bytes:
    """A pickle naming a module only this side had: loading it elsewhere raises ModuleNotFoundError."""
    mod = types.ModuleType("only_on_the_client")

    class Thing:
        pass

    Thing.__module__, Thing.__qualname__ = mod.__name__, obj_name
    setattr(mod, obj_name, Thing)
    sys.modules[mod.__name__] = mod
    try:
        return pickle.dumps([{"x": Thing()}])
    finally:
        del sys.modules[mod.__name__]


# --- timeouts: one timer per batch, a deadline per call -----------------------------------------
def test_each_call_gets_its_own_timeout_in_a_batch_longer_than_it():
    """Lithops' ``timeout`` is per call. Five 0.1 s calls (0.5 s in all) under a 0.3 s
    timeout all return; a 2 s call after them fails with TimeoutError; the call after
    that returns; and the batch leaves no timer running and the old handler in place."""
    before = signal.getsignal(signal.SIGALRM)
    outcome = run_batch(_batch(funcs.sleepy, [{"seconds": 0.1}] * 5 + [{"seconds": 2}, {"seconds": 0.01}], timeout=0.3))
    futures = _futures(7)
    apply_outcomes(futures, outcome)
    assert [f.result() for f in futures[:5]] == [0.1] * 5 and futures[6].result() == 0.01
    with pytest.raises(TimeoutError, match="timeout of 0.3 seconds"):
        futures[5].result()
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0) and signal.getsignal(signal.SIGALRM) is before


def test_a_timeout_through_the_pool_fails_only_the_slow_call(fexec):
    fs = fexec.map(funcs.sleepy, [0.05] * 4 + [30, 0.05], timeout=0.5, chunksize=6)  # one batch, one worker
    assert fexec.get_result(fs[:4] + fs[5:], timeout=60) == [0.05] * 5
    with pytest.raises(TimeoutError, match="timeout of 0.5"):
        fs[4].result()


# --- lithops.data_limit stays per call ----------------------------------------------------------
def test_an_input_above_data_limit_names_its_call_and_nothing_runs(fexec, tmp_path):
    """``lithops.data_limit`` (MiB) bounds each call's input: the error names the call
    and the fix, and no call of the job runs (nothing is sent before the check)."""
    log = tmp_path / "log"
    items = [(str(log), i, "x" * (5000 if i == 3 else 10)) for i in range(6)]
    with pytest.raises(ValueError, match=r"input data of call 3 is .* above lithops.data_limit .*raise data_limit"):
        fexec.map(funcs.logged_sleep, items)
    assert not log.exists()


def test_a_batch_above_data_limit_whose_calls_are_each_below_it_runs(fexec):
    """200 calls of 100 bytes each (20 KB per batch, more than the 4 KiB limit): the
    limit is per call, as in Lithops, so they run."""
    assert fexec.get_result(fexec.map(funcs.echo, ["y" * 100] * 200, chunksize=200)) == ["y" * 100] * 200


# --- one pickle of values, failures per call ------------------------------------------------------
def test_a_value_that_does_not_pickle_fails_only_its_own_call(fexec):
    fs = fexec.map(funcs.lock_if, [1, "lock", 3], chunksize=3)
    assert fexec.get_result(fs, throw_except=False) == [1, None, 3]
    with pytest.raises(TypeError, match="pickle"):
        fs[1].result()
    assert "cannot pickle" in fs[1]._traceback  # its own traceback travels


def test_arguments_the_worker_cannot_load_fail_every_call_of_the_batch_with_the_reason():
    """A batch's arguments are one pickle: if the worker cannot load it (a class of a
    module only the client has), each of its calls fails with that error, by name."""
    batch = Batch("job-blobs", cloudpickle.dumps(funcs.echo), [0, 1], _client_only_blob("Thing"))
    futures = _futures(2)
    apply_outcomes(futures, run_batch(batch))
    for f in futures:
        with pytest.raises(ModuleNotFoundError, match="only_on_the_client"):
            f.result()


def test_values_the_client_cannot_load_fail_their_batch_and_failures_keep_their_own_error():
    outcome = run_batch(_batch(funcs.raise_if_str, [{"x": 1}, {"x": "own"}]))
    assert isinstance(outcome, BatchOutcome)
    outcome.values = _client_only_blob("Value")
    futures = _futures(2)
    apply_outcomes(futures, outcome)
    with pytest.raises(ModuleNotFoundError, match="only_on_the_client"):
        futures[0].result()
    with pytest.raises(ValueError, match="own"):
        futures[1].result()


# --- stats: a real dict, built when read ----------------------------------------------------------
def test_stats_is_a_real_dict_with_lithops_keys_kept_once_built(fexec):
    fs = fexec.map(funcs.double, range(50))
    assert fexec.get_result(fs) == [2 * i for i in range(50)]
    stats = fs[7].stats
    assert type(stats) is dict and set(LITHOPS_STATS) <= set(stats) and fs[7].stats is stats
    assert stats["func_result_size"] == len(pickle.dumps(14, protocol=pickle.HIGHEST_PROTOCOL))
    assert stats["worker_start_tstamp"] <= stats["worker_end_tstamp"] <= stats["host_result_done_tstamp"]
    stats["mine"] = 1
    assert fs[7].stats["mine"] == 1
    copy = pickle.loads(pickle.dumps(fs[8]))
    assert copy.stats == fs[8].stats and copy.result() == 16
    fs[9].stats = {"replaced": True}
    assert fs[9].stats == {"replaced": True}


def test_stats_read_before_the_call_ends_are_completed_when_it_ends():
    futures = _futures(2)
    early = futures[0].stats  # read while the call is running: the submit time only
    assert set(early) == {"host_submit_tstamp"}
    reader = threading.Thread(target=lambda: [futures[1].stats for _ in range(1000)])
    reader.start()
    apply_outcomes(futures, run_batch(_batch(funcs.double, [{"x": 1}, {"x": 2}], worker_label="vm-5")))
    reader.join()
    for f in futures:
        assert set(LITHOPS_STATS) <= set(f.stats) and f.stats["worker_host"] == "vm-5"
    assert futures[0].stats is early
