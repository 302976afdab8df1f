"""The pace of a function's calls (``standalone.pace``): measured from a batch's outcome,
remembered per function by the submitting process, and used to cut that function's next
map into fewer batches when its calls are short, never when they are long."""

from __future__ import annotations

import pickle
import time
from array import array

import cloudpickle
import pytest

import lithops_bridge as lithops
from lithops_bridge.backends.standalone.pace import Paces, batch_floor, seconds_per_call
from lithops_bridge.outcomes import BatchOutcome
from lithops_bridge.runner import Batch, run_batch
from tests.bridge import funcs
from tests.bridge.test_server import vm  # noqa: F401 - the in-process VM fixture


def test_a_batchs_pace_is_its_wall_time_on_the_worker_per_call():
    """``seconds_per_call`` reads a real batch's outcome: first start to last end over its
    calls; outcomes without times (a batch that did not run) teach nothing."""
    batch = Batch("job-pace", cloudpickle.dumps(funcs.sleepy), [0, 1, 2], pickle.dumps([{"seconds": 0.02}] * 3))
    started = time.time()
    outcome = run_batch(batch)
    took = time.time() - started
    assert 0.02 <= seconds_per_call(outcome) <= took / 3 + 0.001  # type: ignore[operator]
    assert seconds_per_call([{"ok": False, "call_id": 0}]) is None


def test_a_pace_rises_at_once_and_falls_by_halves_and_only_so_many_are_kept():
    paces = Paces(size=2)
    slow, fast = _outcome_of(3, 0.3), _outcome_of(3, 0.03)
    paces.record(b"f", fast)
    assert paces.per_call(b"f") == pytest.approx(0.01)
    paces.record(b"f", slow)
    assert paces.per_call(b"f") == pytest.approx(0.1)  # slower: at once
    paces.record(b"f", fast)
    assert paces.per_call(b"f") == pytest.approx(0.055)  # faster: half the way
    paces.record(b"g", fast)
    paces.record(b"h", fast)
    assert paces.per_call(b"f") is None and paces.per_call(b"h") == pytest.approx(0.01)  # the least recent went


def _outcome_of(calls: int, seconds: float) -> BatchOutcome:
    """A batch of ``calls`` that ran from 1000.0 for ``seconds`` in all."""
    times = array("d")
    for i in range(calls):
        times.extend([1000.0 + i * seconds / calls, 0.0, 0.0, 1000.0 + (i + 1) * seconds / calls])
    return BatchOutcome(list(range(calls)), pickle.dumps([None] * calls), times.tobytes(), "h", 1)


@pytest.mark.parametrize(
    "per_call, share, floor, expected",
    [
        (None, 500, 125, 125),  # never seen: a quarter of a process's share
        (1e-5, 500, 125, 500),  # 500 calls take 5 ms: one batch per process
        (1e-4, 500, 125, 500),  # 50 ms: still one batch
        (5e-4, 500, 125, 125),  # 100 calls make 50 ms: below the quarter, which stays
        (2e-4, 500, 125, 250),  # 250 calls make 50 ms
        (10.0, 4, 1, 1),  # long calls: as before
        (0.0, 8, 2, 8),  # no measurable time
        (1e-5, 1, 1, 1),
    ],
)
def test_a_known_pace_raises_the_smallest_batch_to_min_seconds_of_calls(per_call, share, floor, expected):
    assert batch_floor(per_call, share, floor, 0.05) == expected


def test_a_functions_next_map_is_cut_by_the_pace_its_calls_ran_at(vm, monkeypatch):  # noqa: F811
    """The first map of a function is cut as always (factoring down to a quarter of a
    process's share: 6 batches for 1,000 calls over 2 processes); once its calls are known
    to take microseconds, its next map is one batch per process. A function whose calls
    take 10 ms keeps its batches (5 calls, 50 ms, is already the smallest)."""
    from lithops_bridge.backends.standalone import backend as sa_backend

    cut: list[int] = []
    original = sa_backend.StandaloneBackend.batches

    def counting(self, *args, **kwargs):
        batches = original(self, *args, **kwargs)
        cut.append(len(batches))
        return batches

    monkeypatch.setattr(sa_backend.StandaloneBackend, "batches", counting)
    with lithops.FunctionExecutor(config=vm.config) as fexec:
        for _ in range(2):
            assert fexec.get_result(fexec.map(funcs.double, range(1000)), timeout=60) == [2 * i for i in range(1000)]
        for _ in range(2):
            assert fexec.get_result(fexec.map(funcs.sleepy, [0.01] * 40), timeout=60) == [0.01] * 40
    assert cut == [6, 2, 6, 6]


def test_a_pace_learned_on_one_run_does_not_cut_another_runs_maps():
    """Another run may have other machines: the same function's pace is learned anew there.
    1,000 calls over 4 processes at 2 µs a call: one batch per process on the run that
    ran them; 12 (factoring, as for any first map) on another."""
    from lithops_bridge.backends.standalone.backend import StandaloneBackend
    from lithops_bridge.backends.standalone.pace import PACES, pace_key

    backend = StandaloneBackend.__new__(StandaloneBackend)
    backend.settings, backend.min_batch_seconds = {"worker_processes": 2}, 0.05
    live = [{"worker": 1}, {"worker": 2}]
    func = cloudpickle.dumps(funcs.double)
    PACES.record(pace_key(func, "run-a"), _outcome_of(500, 0.001))
    assert len(backend.batches(1000, live, None, pace_key(func, "run-a"))) == 4
    assert len(backend.batches(1000, live, None, pace_key(func, "run-b"))) == 12
