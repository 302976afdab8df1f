"""The fast paths that cut the bridge's per-call overhead keep Lithops' semantics.

A map pickles arguments and results with the C pickler only where that means what
cloudpickle means, binds each item shape once, runs plain calls in a loop, sends a
returned call back as one tuple, and lets a wait register once per job: each test
here checks what a user would see through those paths (values, exceptions per call,
stats, waits) against what the slow paths give.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading

import cloudpickle
import pytest

import lithops_bridge as lithops
from lithops_bridge.backends.standalone import slots
from lithops_bridge.futures import ResponseFuture
from lithops_bridge.iterdata import Binder, bind, bound_signature, call_data
from lithops_bridge.job import factored_chunks, first_round, guided_chunks
from lithops_bridge.outcomes import BatchOutcome, apply_outcomes
from lithops_bridge.pickling import dumps
from lithops_bridge.runner import Batch, run_batch
from tests.bridge import funcs

LITHOPS_STATS = (
    "host_submit_tstamp",
    "worker_start_tstamp",
    "worker_host",
    "worker_pid",
    "worker_func_start_tstamp",
    "worker_func_end_tstamp",
    "worker_func_exec_time",
    "func_result_size",
    "worker_end_tstamp",
    "worker_exec_time",
    "host_status_done_tstamp",
    "host_result_done_tstamp",
)


@pytest.fixture
def fexec(tmp_path):
    config = {
        "lithops": {"backend": "localhost", "storage": "localhost"},
        "localhost": {"storage_root": str(tmp_path / "storage"), "worker_processes": 2},
    }
    with lithops.FunctionExecutor(config=config) as executor:
        yield executor


# --- pickling ------------------------------------------------------------------------------
def test_plain_data_round_trips_and_a_main_class_is_pickled_by_value(monkeypatch):
    """A class of ``__main__`` is pickled by reference by the C pickler (the other side
    may not have it): such an object goes to cloudpickle, which carries the class itself."""
    data = {"x": [1, 2.5, "s", b"b", (1, 2), None, True, {3}, frozenset({4})], "nested": {"k": range(3)}}
    assert pickle.loads(dumps(data)) == data
    point = type("Point", (), {"__module__": "__main__", "__qualname__": "Point"})
    monkeypatch.setattr(sys.modules["__main__"], "Point", point, raising=False)
    blob = dumps(point())
    monkeypatch.delattr(sys.modules["__main__"], "Point")  # the loading side has no such class
    assert type(pickle.loads(blob)).__name__ == "Point"


def test_a_lambda_result_and_a_by_value_module_go_through_cloudpickle():
    assert pickle.loads(dumps(lambda x: x + 1))(1) == 2  # the C pickler refuses it
    cloudpickle.register_pickle_by_value(funcs)
    try:
        assert dumps(funcs.double) != pickle.dumps(funcs.double, protocol=pickle.HIGHEST_PROTOCOL)  # not a reference
        assert pickle.loads(dumps(funcs.double))(4) == 8
    finally:
        cloudpickle.unregister_pickle_by_value(funcs)


# --- binding -------------------------------------------------------------------------------
def _star(a, *rest, key=1):
    return a, rest, key


@pytest.mark.parametrize(
    "func, items",
    [
        (funcs.add3, [(1, 2), (1, 2, 3), {"a": 1, "b": 2, "c": 3}, (4, 5)]),
        (funcs.double, [1, "x", (7,), [3], None]),
        (_star, [1, (1, 2, 3), (1,), 5]),
        (funcs.kw, [{"a": 1}, {"b": 2, "c": 3}]),
    ],
)
def test_binding_each_shape_once_binds_like_inspect(func, items):
    sig = bound_signature(func)
    binder = Binder(sig)
    assert [binder(item) for item in items] == [bind(sig, item) for item in items]


def _no_args():
    return 0


@pytest.mark.parametrize(
    "func, items",
    [(funcs.double, list(range(50))), (_star, list(range(5))), (funcs.kw, [1, 2]), (_no_args, [1, 2]), (funcs.double, [])],
)
def test_a_map_of_items_of_one_plain_type_binds_like_inspect(func, items):
    """``call_data`` binds a map whose items are all of one plain type (not dict, not
    tuple) by the first item's shape: the same dicts as binding each, or the same refusal."""
    sig = bound_signature(func)
    try:
        expected = [bind(sig, item) for item in items]
    except TypeError as exc:
        with pytest.raises(TypeError, match=str(exc)):
            call_data(func, items)
        return
    assert call_data(func, items) == expected


def test_a_bad_item_of_a_new_shape_is_refused_like_lithops():
    binder = Binder(bound_signature(funcs.add))
    assert binder((1, 2)) == {"a": 1, "b": 2}
    with pytest.raises(TypeError, match="missing a required argument: 'b'"):
        binder((1,))
    with pytest.raises(TypeError, match="too many positional arguments"):
        binder((1, 2, 3))


# --- the worker loop and its outcomes ----------------------------------------------------------
def _batch(func, datas: list[dict], **kwargs) -> Batch:
    return Batch("job-1", cloudpickle.dumps(func), list(range(len(datas))), pickle.dumps(datas), **kwargs)


def _resolved(outcomes, n: int) -> list[ResponseFuture]:
    futures = [ResponseFuture("e", "M000", i) for i in range(n)]
    for f in futures:
        f._set_invoked()
    apply_outcomes(futures, outcomes)
    return futures


def test_the_plain_loop_and_the_general_path_give_the_same_outcomes():
    """A job with an environment and one without resolve to the same values, exceptions
    and stats (the environment is set once around the batch, not around each call)."""
    datas = [{"x": 1}, {"x": "boom"}, {"x": 3}]
    results = []
    for extra_env in ({}, {"SOME_VAR": "1"}):
        outcomes = run_batch(_batch(funcs.raise_if_str, datas, extra_env=extra_env, worker_label="vm-7"))
        futures = _resolved(outcomes, 3)
        assert [f.result() for f in (futures[0], futures[2])] == [2, 6]
        with pytest.raises(ValueError, match="boom") as info:
            futures[1].result()
        assert "raise_if_str" in str(info.value.__cause__)  # the remote traceback
        assert all(f.stats["worker_host"] == "vm-7" for f in futures)
        assert set(LITHOPS_STATS) - {"host_submit_tstamp"} <= set(futures[0].stats)
        assert isinstance(outcomes, BatchOutcome) and sorted(outcomes.failures) == [1]
        results.append([sorted(f.stats) for f in futures])
    assert results[0] == results[1]


def test_a_batch_travels_in_a_result_slot_and_resolves_the_same():
    """Standalone result slots are JSON: a batch's outcome (values as one pickle, a
    failed call's exception beside them) is written as base64 and the client resolves
    the futures from it with the same values, exceptions and stats."""
    outcome = run_batch(_batch(funcs.raise_if_str, [{"x": 21}, {"x": "no"}, {"x": None}], worker_label="vm-2"))
    body = slots.decode(slots.encode({"kind": slots.RESULT, "outcomes": outcome}))
    assert body["outcomes"] == outcome
    futures = _resolved(body["outcomes"], 3)
    assert futures[0].result() == 42 and futures[0].stats["worker_host"] == "vm-2"
    with pytest.raises(ValueError, match="no"):
        futures[1].result()
    assert futures[0].stats["func_result_size"] == len(pickle.dumps(42, protocol=pickle.HIGHEST_PROTOCOL))


# --- futures and waits through a real pool ------------------------------------------------------
def test_a_large_map_keeps_call_ids_order_stats_and_per_call_exceptions(fexec):
    n = 20_000
    fs = fexec.map(funcs.raise_if_str, [str(i) if i == 12_345 else i for i in range(n)])
    assert [f.call_id for f in fs] == list(range(n))
    with pytest.raises(ValueError, match="12345"):
        fexec.get_result(fs)
    values = fexec.get_result(fs, throw_except=False)
    assert values[:3] == [0, 2, 4] and values[12_345] is None and values[-1] == 2 * (n - 1)
    assert set(LITHOPS_STATS) <= set(fs[7].stats) and fs[7].error is False and fs[12_345].error


def test_waits_from_two_threads_and_on_one_future_all_return(fexec):
    """Two waits over the same job (one group, two waiters) and a wait on one future
    (its own event, made on demand) all see the calls finish."""
    fs = fexec.map(funcs.sleepy, [0.01] * 200)
    seen: dict[str, int] = {}

    def wait_all(name: str) -> None:
        done, not_done = lithops.wait(fs, timeout=60)
        seen[name] = len(done) + 1000 * len(not_done)

    threads = [threading.Thread(target=wait_all, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    assert fs[150].result() == 0.01
    for t in threads:
        t.join(60)
    assert seen == {"a": 200, "b": 200}


def test_any_completed_and_always_return_early(fexec, tmp_path):
    gate = tmp_path / "gate"
    fs = fexec.map(funcs.logged_sleep_or_gate, [(str(tmp_path / "log"), i, str(gate) if i else 0.0) for i in range(3)])
    done, not_done = fexec.wait(fs, return_when=lithops.ANY_COMPLETED, timeout=60)
    assert [f.call_id for f in done] == [0] and len(not_done) == 2
    done, not_done = fexec.wait(fs, return_when=lithops.ALWAYS)
    assert len(done) + len(not_done) == 3 and not_done
    with pytest.raises(TimeoutError, match="1 of 3 done"):
        fexec.wait(fs, timeout=0.3)
    gate.touch()
    assert [c for c, _vm in fexec.get_result(fs, timeout=60)] == [0, 1, 2]


def test_a_future_made_elsewhere_is_waited_on_too():
    """A future unpickled (or made by hand) belongs to no job's group: a wait gives it one."""
    fut = ResponseFuture("e", "M000", 0)
    fut._set_invoked()
    copy = pickle.loads(pickle.dumps(fut))
    threading.Timer(0.2, lambda: copy._set_result(5, {})).start()
    done, not_done = lithops.wait([copy, copy], timeout=10)  # the same future twice counts twice
    assert len(done) == 2 and not not_done and copy.result() == 5


def test_chunksize_is_the_number_of_calls_per_batch(fexec):
    """Lithops' ``map(..., chunksize=)``: here, the calls each batch sends to one worker,
    which runs them one after the other."""
    fs = fexec.map(funcs.double, range(10), chunksize=5)
    assert fexec.get_result(fs) == [2 * i for i in range(10)]
    for chunk in (fs[:5], fs[5:]):
        assert len({f.stats["worker_pid"] for f in chunk}) == 1
        assert all(b.stats["worker_start_tstamp"] >= a.stats["worker_end_tstamp"] for a, b in zip(chunk, chunk[1:]))


def test_two_jobs_that_share_a_key_run_their_own_functions():
    """A worker keeps loaded functions per job: a second job under the same key (another
    executor's, or a test's) must not run the first one's function."""
    assert _resolved(run_batch(_batch(funcs.double, [{"x": 4}])), 1)[0].result() == 8
    assert _resolved(run_batch(_batch(funcs.raise_if_str, [{"x": 4}])), 1)[0].result() == 8
    outcome = run_batch(_batch(funcs.raise_value_error, [{"x": 4}]))
    assert outcome.failures[0]["ok"] is False and outcome.failures[0]["exc_type"] == "ValueError"


# --- how a job is cut into batches ---------------------------------------------------------------
@pytest.mark.parametrize("n, workers, min_size", [(1, 4, 1), (1000, 4, 1), (1000, 4, 16), (100_000, 2, 3125), (7, 4, 16)])
def test_batches_cover_every_call_once_and_stop_shrinking_at_min_size(n, workers, min_size):
    """Guided self-scheduling: batches shrink as the job drains (big first, balanced
    tail), but none is smaller than ``min_size`` calls except the last; every call is in
    exactly one batch, in order."""
    batches = guided_chunks(n, workers, min_size=min_size)
    assert batches[0][0] == 0 and batches[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(batches, batches[1:]))  # contiguous, no call twice
    sizes = [end - start for start, end in batches]
    assert sizes[:-1] == sorted(sizes[:-1], reverse=True)  # big batches first
    assert all(size >= min(min_size, n) for size in sizes[:-1])


def test_a_fixed_chunksize_wins_over_the_guided_sizes():
    assert guided_chunks(10, 4, chunksize=3, min_size=8) == [(0, 3), (3, 6), (6, 9), (9, 10)]


def test_standalone_batches_of_a_large_map_are_few(tmp_path):
    """Every standalone batch costs a claim, a result, a read and two deletes in storage:
    a 1,000-call map over 4 processes is cut by factoring into 12 batches (equal batches
    of the same smallest size, 63 calls, made 16): a first round of 4 batches holding
    half the calls, then rounds of 63 (a quarter of a process's share, the chunk size
    ``multiprocessing.Pool.map`` picks by default), every call in one of them, in order;
    ``chunksize`` still wins."""
    from lithops_bridge.backends.standalone.backend import StandaloneBackend

    backend = StandaloneBackend.__new__(StandaloneBackend)
    backend.settings = {"worker_processes": 2}
    live = [{"worker": 1}, {"worker": 2}]
    batches = backend.batches(1000, live, None)
    sizes = [end - start for start, end in batches]
    assert len(batches) == 12 and sizes[:4] == [125] * 4 and sum(sizes[:4]) == 500 and max(sizes[4:]) == 63
    assert batches[0][0] == 0 and batches[-1][1] == 1000 and all(a[1] == b[0] for a, b in zip(batches, batches[1:]))
    assert backend.batches(7, live, None) == [(i, i + 1) for i in range(7)]  # fewer calls than processes x 2: one each
    assert backend.batches(1000, live, 500) == [(0, 500), (500, 1000)]


@pytest.mark.parametrize(
    "n, workers, floor", [(1, 4, 1), (1000, 2, 125), (1000, 4, 63), (100_000, 8, 3125), (10, 4, 1), (999, 3, 84)]
)
def test_factoring_halves_what_is_left_in_rounds_of_one_batch_per_worker(n, workers, floor):
    """Factoring: each round is ``workers`` equal batches holding half of what is left
    (the first round half the job), sizes never grow, none is below ``floor`` but the
    last, and every call is in exactly one batch, in order."""
    batches = factored_chunks(n, workers, floor)
    assert batches[0][0] == 0 and batches[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(batches, batches[1:]))
    sizes = [end - start for start, end in batches]
    assert sizes == sorted(sizes, reverse=True)
    assert all(size >= min(floor, n) for size in sizes[:-1])
    first = first_round(batches)
    assert first == min(workers, len(batches)) or sizes[0] == floor
    assert sum(sizes[:workers]) >= min(n, n // 2)


def test_a_batch_of_outcomes_finishes_its_futures_together():
    """``apply_outcomes`` finishes a batch's returned calls in one go: a thread waiting on
    one future, a callback on another, and a ``wait()`` over all of them are each served
    once; a failed call still raises its own exception; a future already finished (a
    late duplicate) keeps its first result."""
    from lithops_bridge.waiting import Group

    group = Group()
    futures = [ResponseFuture("e", "M000", i, group=group) for i in range(4)]
    for f in futures:
        f._set_invoked()
    futures[3]._set_result("first", {})
    calls: list = []
    futures[1]._add_done_callback(calls.append)
    got: dict = {}
    waiter_thread = threading.Thread(target=lambda: got.setdefault("r", futures[0].result()))
    waiter_thread.start()
    waited: dict = {}
    wait_thread = threading.Thread(target=lambda: waited.setdefault("w", lithops.wait(futures, throw_except=False, timeout=30)))
    wait_thread.start()
    outcomes = run_batch(_batch(funcs.raise_if_str, [{"x": 1}, {"x": 2}, {"x": "bad"}, {"x": 4}], worker_label="vm-3"))
    apply_outcomes(futures, outcomes)
    waiter_thread.join(10)
    wait_thread.join(10)
    assert got == {"r": 2} and calls == [futures[1]]
    done, not_done = waited["w"]
    assert len(done) == 4 and not not_done
    with pytest.raises(ValueError, match="bad"):
        futures[2].result()
    assert futures[3].result() == "first" and futures[1].stats["worker_host"] == "vm-3"
    assert futures[0].stats["host_result_done_tstamp"] >= futures[0].stats["worker_end_tstamp"]


def test_the_default_floor_is_a_sixteenth_of_a_workers_share():
    """Both backends cut an unsized map with this floor: 100,000 calls over 2 workers make
    19 batches of at least 3,125 calls (no single-call tail); a map of 20 calls still ends
    in single calls (its floor is 1)."""
    big = guided_chunks(100_000, 2)
    assert len(big) == 19 and min(end - start for start, end in big[:-1]) == 3125
    assert guided_chunks(20, 2)[-3:] == [(17, 18), (18, 19), (19, 20)]


def test_a_batchs_environment_is_set_for_every_call_and_restored_after(monkeypatch):
    """Every call of a batch sees the job's environment, the plain loop and the general
    path alike; the worker process's own environment is back as it was afterwards."""
    monkeypatch.setenv("BRIDGE_KEPT", "before")
    monkeypatch.delenv("BRIDGE_ADDED", raising=False)
    env = {"BRIDGE_KEPT": "job", "BRIDGE_ADDED": "1"}
    for func in (funcs.env_value, funcs.env_value_with_id):
        datas = [{"name": "BRIDGE_KEPT"}, {"name": "BRIDGE_ADDED"}, {"name": "BRIDGE_KEPT"}]
        futures = _resolved(run_batch(_batch(func, datas, extra_env=env)), 3)
        assert [f.result() for f in futures] == ["job", "1", "job"]
        assert os.environ["BRIDGE_KEPT"] == "before" and "BRIDGE_ADDED" not in os.environ
