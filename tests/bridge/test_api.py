"""The FunctionExecutor API against both compute backends (localhost, standalone)."""

from __future__ import annotations

import pytest

import lithops_bridge as lithops
from lithops_bridge.futures import FunctionError, RemoteTraceback
from tests.bridge import funcs


def test_map_iterdata_forms(fexec):
    assert fexec.get_result(fexec.map(funcs.double, [1, 2, 3])) == [2, 4, 6]
    assert fexec.get_result(fexec.map(funcs.double, range(4))) == [0, 2, 4, 6]
    assert sorted(fexec.get_result(fexec.map(funcs.double, {5, 6}))) == [10, 12]
    assert fexec.get_result(fexec.map(funcs.add, [(1, 2), (3, 4)])) == [3, 7]  # tuple -> positional
    assert fexec.get_result(fexec.map(funcs.add, [{"a": 1, "b": 10}, {"b": 2, "a": 5}])) == [11, 7]  # dict -> kwargs
    assert fexec.get_result(fexec.map(funcs.echo, [[1, 2], "ab"])) == [[1, 2], "ab"]  # scalar -> first param
    assert fexec.get_result(fexec.map(funcs.kw, [{"x": 1}])) == [[("x", 1)]]  # **kwargs takes any dict


def test_map_extra_args_merged_the_lithops_way(fexec):
    assert fexec.get_result(fexec.map(funcs.add, [1, 2], extra_args=(100,))) == [101, 102]
    assert fexec.get_result(fexec.map(funcs.add3, [(1, 2)], extra_args=(3,))) == [6]
    assert fexec.get_result(fexec.map(funcs.add, [{"a": 1}], extra_args={"b": 5})) == [6]
    with pytest.raises(TypeError, match="extra_args"):
        fexec.map(funcs.add, [(1, 2)], extra_args={"b": 1})
    with pytest.raises(ValueError, match="args must be"):
        fexec.map(funcs.add, [{"a": 1}])


def test_call_async_single_value_and_forms(fexec):
    assert fexec.get_result(fexec.call_async(funcs.add, (2, 3))) == 5
    assert fexec.call_async(funcs.add, {"a": 1, "b": 1}).result() == 2
    fut = fexec.call_async(funcs.double, 21)
    assert fexec.get_result(fut) == 42
    assert fexec.get_result([fut]) == 42  # Lithops: one result and last call not a map


def test_get_result_in_submission_order_across_jobs(fexec):
    fexec.map(funcs.sleepy, [0.2, 0.0])
    fexec.call_async(funcs.double, 5)
    fexec.map(funcs.double, [1, 2])
    assert fexec.get_result() == [0.2, 0.0, 10, 2, 4]
    assert fexec.get_result() == []  # already read
    fs = fexec.map(funcs.double, [3]) + fexec.map(funcs.double, [4])
    assert lithops.get_result(fs) == [6, 8]


def test_chained_map_with_futures_as_iterdata(fexec):
    first = fexec.map(funcs.double, [1, 2, 3])
    second = fexec.map(funcs.add, first, extra_args=(1,))
    assert fexec.get_result(second) == [3, 5, 7]
    assert fexec.get_result() == [3, 5, 7]  # the chained-from futures produce no output


def test_wait_return_when(fexec, tmp_path):
    gate = str(tmp_path / "gate")
    fs = fexec.map(funcs.wait_for_file, [str(tmp_path), gate])  # the second call blocks until the gate opens
    done, not_done = fexec.wait(fs, return_when=lithops.ANY_COMPLETED)
    assert done == [fs[0]] and not_done == [fs[1]]
    done, not_done = fexec.wait(fs, return_when=lithops.ALWAYS)
    assert fs[1] in not_done and len(done) + len(not_done) == 2
    done, not_done = lithops.wait(fs, return_when=50)
    assert done == [fs[0]] and not_done == [fs[1]]
    open(gate, "w").close()
    done, not_done = fexec.wait(fs, return_when=lithops.ALL_COMPLETED)
    assert len(done) == 2 and not not_done
    assert lithops.ALL_COMPLETED == 100 and lithops.ANY_COMPLETED == -1 and lithops.ALWAYS == 0


def test_future_api(fexec):
    fut = fexec.call_async(funcs.double, 4)
    done, _ = fexec.wait([fut])  # status only: Lithops calls this "success"
    assert done == [fut] and fut.success and not fut.error and not fut.running
    assert fut.result() == 8
    assert fut.done and not fut.error  # result read: "done"
    status = fut.status()
    assert status["exception"] is False
    for key in ("worker_start_tstamp", "worker_end_tstamp", "worker_func_exec_time", "host_submit_tstamp"):
        assert key in fut.stats
    assert fut.call_id == 0 and fut.job_id == "A000" and fut.executor_id == fexec.executor_id


def test_exception_keeps_type_and_remote_traceback(fexec):
    fut = fexec.call_async(funcs.raise_value_error, 3)
    with pytest.raises(ValueError, match="bad value 3") as info:
        fexec.get_result(fut)
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "raise_value_error" in cause.tb and "funcs.py" in cause.tb
    with pytest.raises(funcs.CustomError, match="custom 1"):
        fexec.call_async(funcs.raise_custom, 1).result()
    assert fut.error and fut.done
    assert fexec.get_result(fexec.map(funcs.raise_value_error, [1]), throw_except=False) == [None]


def test_unpicklable_exception_still_names_its_type(fexec):
    with pytest.raises(FunctionError, match="Unpicklable: x/y") as info:
        fexec.call_async(funcs.raise_unpicklable, "x").result()
    assert "raise_unpicklable" in info.value.__cause__.tb


def test_call_timeout_raises_timeout_error(fexec):
    fut = fexec.call_async(funcs.sleepy, 30, timeout=0.5)
    with pytest.raises(TimeoutError, match="timeout of 0.5"):
        fut.result()
    assert fexec.call_async(funcs.double, 1).result() == 2  # the worker is usable again


def test_wait_timeout_raises_timeout_error(fexec):
    fut = fexec.call_async(funcs.sleepy, 1.0)
    with pytest.raises(TimeoutError, match="Timeout of 0.2 seconds"):
        fexec.get_result(fut, timeout=0.2)
    assert fexec.get_result(fut) == 1.0


def test_injected_storage_and_id(fexec, bucket):
    results = fexec.get_result(fexec.map(funcs.with_storage, [1, 2, 3]))
    assert [r["id"] for r in results] == [0, 1, 2]
    assert {r["bucket"] for r in results} == {bucket}
    for x, r in zip([1, 2, 3], results):
        assert fexec.storage.get_object(bucket, r["key"]) == str(x * 10).encode()


def test_returned_futures_are_resolved(fexec):
    assert fexec.call_async(funcs.nested_map, 3).result() == [0, 2, 4]
    assert fexec.get_result(fexec.call_async(funcs.nested_single, 5)) == 10


def test_function_may_create_its_own_executor(fexec):
    assert fexec.get_result(fexec.map(funcs.nested_result, [2, 3])) == [2, 6]


def test_map_reduce(fexec):
    assert fexec.get_result(fexec.map_reduce(funcs.double, range(5), funcs.total)) == 20
    fs = fexec.map_reduce(funcs.double, [1, 2], funcs.total_plus, extra_args_reduce=(100,), spawn_reducer=lithops.ALWAYS)
    assert len(fs) == 3 and fexec.get_result(fs) == 106
    fs = fexec.map_reduce(funcs.double, [1, 2], funcs.total, spawn_reducer=100)
    assert fexec.get_result(fs) == 6


def test_map_reduce_map_failure(fexec):
    with pytest.raises(ValueError, match="bad value 1"):  # Lithops: map_reduce waits for the maps, and raises
        fexec.map_reduce(funcs.raise_value_error, [1], funcs.total)
    fs = fexec.map_reduce(funcs.raise_value_error, [2], funcs.total, spawn_reducer=lithops.ALWAYS)
    with pytest.raises(ValueError, match="bad value 2"):
        fs[-1].result()  # the reducer fails with the map's error
    with pytest.raises(ValueError, match="bad value 2"):
        fexec.get_result(fs)


def test_reducer_of_an_unpicklable_map_failure_raises_it(fexec):
    fs = fexec.map_reduce(funcs.raise_unpicklable, [1], funcs.total, spawn_reducer=lithops.ALWAYS)
    with pytest.raises(FunctionError, match="Unpicklable: 1/y"):
        fs[-1].result()
    chained = fexec.map(funcs.echo, fexec.map(funcs.raise_unpicklable, [2]))
    with pytest.raises(FunctionError, match="Unpicklable: 2/y"):
        chained[0].result()


def test_missing_key_read_remotely_raises_storage_no_such_key(fexec):
    from lithops_bridge.storage.utils import StorageNoSuchKeyError

    with pytest.raises(StorageNoSuchKeyError, match="no-such-key-here") as info:
        fexec.call_async(funcs.get_missing, "no-such-key-here").result()
    assert info.value.key == "no-such-key-here" and info.value.bucket == fexec.storage.bucket


def test_extra_env_reaches_the_function(fexec):
    assert fexec.call_async(funcs.env_value, "BRIDGE_TEST_VAR", extra_env={"BRIDGE_TEST_VAR": "42"}).result() == "42"
    assert fexec.call_async(funcs.env_value, "BRIDGE_TEST_VAR").result() is None


def test_chunksize_and_many_calls(fexec):
    fs = fexec.map(funcs.double, range(300), chunksize=7)
    assert fexec.get_result(fs) == [2 * i for i in range(300)]


def test_lambda_and_closure_travel_by_value(fexec):
    offset = 7
    assert fexec.get_result(fexec.map(lambda x: x + offset, [1, 2])) == [8, 9]


def test_futures_list_methods(fexec):
    fs = fexec.map(funcs.double, [1, 2])
    assert fs.get_result() == [2, 4]
    done, not_done = fs.wait()
    assert len(done) == 2 and not not_done
    assert fexec.map_reduce(funcs.double, range(4), funcs.total).get_result() == 12  # the reducer's value, as in Lithops
    chained = fexec.map(funcs.double, [1, 2]).map(funcs.double)
    assert chained.get_result() == [4, 8]
    assert fexec.map(funcs.double, [1, 2, 3]).map_reduce(funcs.double, funcs.total).get_result() == 24
    assert lithops.FuturesList(fexec.map(funcs.double, [5])).get_result() == [10]  # no executor: module-level


def test_empty_futures_mean_all_of_the_executor(fexec):
    fs = fexec.map(funcs.double, [1, 2])
    done, not_done = fexec.wait([])
    assert set(map(id, done)) == set(map(id, fs)) and not not_done
    assert fexec.get_result([]) == [2, 4]
    assert fexec.get_result([]) == []  # already read


def test_localhost_executor_forces_the_localhost_backend(config_for):
    with lithops.LocalhostExecutor(config=config_for("standalone")) as fexec:
        assert fexec.backend == "localhost" and fexec.compute_handler.name == "localhost"
        assert fexec.call_async(funcs.double, 2).result() == 4
