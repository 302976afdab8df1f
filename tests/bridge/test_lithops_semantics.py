"""Lithops semantics users rely on, on both compute backends (localhost, standalone)
and both storages (localhost, S3 over the moto server on 127.0.0.1): consumed
futures, Storage answers on the workers, which modules travel with a function,
``lithops_bridge.multiprocessing`` and ``lithops_bridge.storage.cloud_proxy``."""

from __future__ import annotations

import os
import sys
import textwrap
import time
import uuid

import pytest

import lithops_bridge as lithops
from tests.bridge import funcs


@pytest.fixture
def executor(lithops_config):
    with lithops.FunctionExecutor(config=lithops_config) as fexec:
        yield fexec


def _fresh(lithops_config):
    return lithops.FunctionExecutor(config=lithops_config)


# --- consumed futures --------------------------------------------------------------------
def test_futures_given_to_map_are_consumed(lithops_config):
    """Lithops 3.x (lithops/executors.py): ``map`` marks futures given as iterdata with
    ``_produce_output = False``, and ``get_result()`` without futures returns, in
    submission order, the outputs of the executor's futures not read yet that produce
    output (``[f for f in fs_done if not f.futures and f._produce_output]``).
    ``first = map(sq, [1, 2]); map(dbl, first); get_result()`` is ``[2, 8]``; with
    ``first[:1]`` it is ``[4, 2]``; the same for a list, a tuple or any iterable of
    futures."""
    forms = {"FuturesList": lambda fs: fs, "list": list, "tuple": tuple, "generator": lambda fs: (f for f in fs)}
    for name, form in forms.items():
        with _fresh(lithops_config) as fexec:
            first = fexec.map(funcs.square, [1, 2])
            fexec.map(funcs.double, form(first))
            assert fexec.get_result() == [2, 8], name
        with _fresh(lithops_config) as fexec:
            first = fexec.map(funcs.square, [1, 2])
            fexec.map(funcs.double, form(first[:1]))
            assert fexec.get_result() == [4, 2], name
            assert fexec.get_result() == []  # everything read


def test_wait_without_futures_waits_for_every_job(lithops_config):
    """Lithops 3.x: ``wait()`` with no ``fs`` waits on ``self.futures`` (every future
    of the executor, consumed ones included) and returns ``(done, not_done)``; the
    outputs are then those of the unconsumed futures."""
    with _fresh(lithops_config) as fexec:
        first = fexec.map(funcs.square, [1, 2])
        second = fexec.map(funcs.double, first[:1])
        done, not_done = fexec.wait()
        assert not not_done and set(map(id, done)) == set(map(id, list(first) + list(second)))
        assert fexec.get_result() == [4, 2]


def test_an_iterator_of_other_things_is_refused_with_the_fix(executor):
    with pytest.raises(TypeError, match="pass a list"):
        executor.map(funcs.double, iter([1, 2]))


# --- Storage on the workers -----------------------------------------------------------------
def test_storage_answers_on_the_worker_have_the_lithops_shapes(executor):
    """Lithops' S3 backends: ``put_object`` returns None, ``head_bucket`` the response
    with ``ResponseMetadata.HTTPStatusCode`` 200, ``head_object`` the HTTP headers
    (``content-length`` a string, the ETag in quotes), ``list_objects`` items with
    ``Key``/``Size``/``ETag``/``LastModified``, ``delete_object`` the DELETE response."""
    key = f"semantics/{uuid.uuid4().hex}"
    out = executor.call_async(funcs.storage_answers, key).result()
    assert out["put"] is None and out["head_bucket"]["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert out["head_object"]["content-length"] == "6" and out["head_object"]["etag"].startswith('"')
    [item] = out["listed"]
    assert item["Key"] == key and item["Size"] == 6 and item["ETag"] == out["head_object"]["etag"]
    assert out["deleted"] in (200, 204)
    assert key not in executor.storage.list_keys(executor.storage.bucket, "semantics/")


# --- include_modules / exclude_modules ------------------------------------------------------
def _user_modules(tmp_path, monkeypatch):
    """A module and its helper in a folder only this process imports from (workers and
    VMs cannot): ``mod.triple(x)`` is ``helper.K * x``."""
    tag = uuid.uuid4().hex[:8]
    folder = tmp_path / f"user-code-{tag}"
    folder.mkdir()
    helper, mod = f"bridge_helper_{tag}", f"bridge_mod_{tag}"
    (folder / f"{helper}.py").write_text("K = 3\n")
    (folder / f"bridge_lazy_{tag}.py").write_text("M = 5\n")
    (folder / f"{mod}.py").write_text(
        textwrap.dedent(f"""
        import {helper}

        def triple(x):
            return {helper}.K * x

        def five_times(x):
            import bridge_lazy_{tag}  # imported only when the call runs
            return bridge_lazy_{tag}.M * x
        """)
    )
    monkeypatch.syspath_prepend(str(folder))
    __import__(mod)
    return sys.modules[mod], helper


def test_modules_of_the_caller_travel_with_the_function(lithops_config, tmp_path, monkeypatch):
    """Lithops 3.x (lithops/job/serialize.py): with ``include_modules=[]`` (the default)
    the modules the function references travel with it, except installed ones and
    those in ``exclude_modules``; ``include_modules=[names]`` sends exactly those;
    ``include_modules=None`` sends none."""
    with _fresh(lithops_config) as fexec:
        fexec.call_async(funcs.double, 1).result()  # the workers exist before the user code's folder is on sys.path
        mod, helper = _user_modules(tmp_path, monkeypatch)
        with pytest.raises(ModuleNotFoundError, match=mod.__name__):
            fexec.call_async(mod.triple, 1, include_modules=None).result()
    with _fresh(lithops_config) as fexec:
        mod, helper = _user_modules(tmp_path, monkeypatch)
        with pytest.raises(ModuleNotFoundError, match=helper):
            fexec.call_async(mod.triple, 1, exclude_modules=[helper]).result()
    with _fresh(lithops_config) as fexec:
        mod, helper = _user_modules(tmp_path, monkeypatch)
        with pytest.raises(ModuleNotFoundError, match=helper):
            fexec.call_async(mod.triple, 1, include_modules=[mod.__name__]).result()
    with _fresh(lithops_config) as fexec:
        mod, helper = _user_modules(tmp_path, monkeypatch)
        assert fexec.get_result(fexec.map(mod.triple, [1, 2], include_modules=[mod.__name__, helper])) == [3, 6]
    with _fresh(lithops_config) as fexec:
        mod, _helper = _user_modules(tmp_path, monkeypatch)
        assert fexec.get_result(fexec.map(mod.triple, [1, 2, 3])) == [3, 6, 9]  # detected: both travel
        lazy = mod.__name__.replace("bridge_mod_", "bridge_lazy_")
        assert fexec.call_async(mod.five_times, 2).result() == 10  # found in its code, sent as a file
        assert lazy not in sys.modules  # ... without being imported here


def test_include_modules_none_in_the_config(lithops_config, tmp_path, monkeypatch):
    """Lithops 3.x (lithops/job/job.py): ``lithops.include_modules: none`` in the
    config sends no module unless the call names some."""
    config = {**lithops_config, "lithops": {**lithops_config["lithops"], "include_modules": "none"}}
    with _fresh(config) as fexec:
        fexec.call_async(funcs.double, 1).result()
        mod, helper = _user_modules(tmp_path, monkeypatch)
        with pytest.raises(ModuleNotFoundError):
            fexec.call_async(mod.triple, 1).result()
        assert fexec.call_async(mod.triple, 2, include_modules=[mod.__name__, helper]).result() == 6
    with pytest.raises(lithops.errors.ConfigError, match="lithops.include_modules"):
        bad = {**lithops_config, "lithops": {**lithops_config["lithops"], "include_modules": "some"}}
        with _fresh(bad) as fexec:
            fexec.call_async(funcs.double, 1)


# --- lithops_bridge.multiprocessing -----------------------------------------------------------
@pytest.fixture
def mp(lithops_config):
    """``lithops_bridge.multiprocessing`` configured, as Lithops users do, with
    ``config.set_parameter(config.LITHOPS_CONFIG, {...})``."""
    import lithops_bridge.multiprocessing as mp

    previous = mp.config.get_parameter(mp.config.LITHOPS_CONFIG)
    mp.config.set_parameter(mp.config.LITHOPS_CONFIG, {"config": lithops_config})
    yield mp
    mp.config.set_parameter(mp.config.LITHOPS_CONFIG, previous)


def test_pool_runs_the_stdlib_api_as_calls(mp):
    """Lithops 3.x (lithops/multiprocessing/pool.py) mirrors ``multiprocessing.Pool``:
    ``map``, ``starmap``, ``imap``, ``imap_unordered``, ``apply``, ``apply_async``
    (``get``, ``ready``, ``successful``, callbacks), ``close``/``join``,
    ``terminate``, the context manager (``__exit__`` terminates) and an
    ``initializer`` run before the tasks on the worker."""
    with mp.Pool(processes=2, initializer=funcs.set_init_tag, initargs=("ready",)) as pool:
        assert pool.map(funcs.square, range(6)) == [0, 1, 4, 9, 16, 25]
        assert pool.starmap(funcs.add, [(1, 2), (3, 4)]) == [3, 7]
        assert list(pool.imap(funcs.square, [3, 1, 2])) == [9, 1, 4]
        assert sorted(pool.imap_unordered(funcs.square, [3, 1, 2])) == [1, 4, 9]
        assert pool.apply(funcs.add, (1,), {"b": 41}) == 42
        assert pool.map(funcs.init_tag, [1]) == [("ready", 1)]
        seen = []
        res = pool.apply_async(funcs.double, (21,), callback=seen.append)
        assert res.get(timeout=60) == 42 and res.ready() and res.successful()
        errors = []
        bad = pool.map_async(funcs.raise_value_error, [5], error_callback=errors.append)
        with pytest.raises(ValueError, match="bad value 5"):
            bad.get(timeout=60)
        assert not bad.successful()
        pending = pool.map_async(funcs.sleepy, [0.3, 0.3])
        pool.close()
        with pytest.raises(ValueError, match="Pool not running"):
            pool.map(funcs.square, [1])
        pool.join()  # waits for what was submitted
        assert pending.ready() and pending.get() == [0.3, 0.3]
    deadline = time.monotonic() + 30  # the callbacks run on a thread of their own
    while (not seen or not errors) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert seen == [42] and [type(e) for e in errors] == [ValueError]
    with pytest.raises(ValueError, match="at least 1"):
        mp.Pool(0)


def test_pool_terminate_stops_taking_work(mp):
    pool = mp.Pool()
    assert pool._processes >= 1 and mp.cpu_count() >= 1
    with pytest.raises(ValueError, match="still running"):
        pool.join()
    pool.terminate()
    pool.join()
    with pytest.raises(ValueError, match="Pool not running"):
        pool.apply_async(funcs.double, (1,))


def test_process_runs_one_call(mp, executor):
    """Lithops 3.x (lithops/multiprocessing/process.py): ``Process(target, args,
    kwargs).start()`` is one ``call_async``; ``join()`` waits for it and raises its
    exception; ``pid`` is ``executor_id/job_id/call_id``."""
    key = f"semantics/process/{uuid.uuid4().hex}"
    storage = executor.storage
    proc = mp.Process(target=funcs.store_value, args=(storage, key), kwargs={"value": "7"}, name="writer")
    assert proc.exitcode is None and not proc.is_alive() and proc.name == "writer"
    proc.start()
    proc.join()
    assert proc.exitcode == 0 and not proc.is_alive() and proc.pid.count("/") == 2
    assert storage.get_object(storage.bucket, key) == b"7"
    failing = mp.Process(target=funcs.raise_value_error, args=(9,))
    failing.start()
    with pytest.raises(ValueError, match="bad value 9"):
        failing.join()
    assert failing.exitcode == 1
    sub_key = f"semantics/process/{uuid.uuid4().hex}"
    sub = funcs.StoringProcess(storage, sub_key, 11)  # a subclass with its own run()
    sub.start()
    sub.join()
    assert storage.get_object(storage.bucket, sub_key) == b"11"
    with pytest.raises(AssertionError, match="twice"):
        sub.start()


def test_current_process_in_a_task_is_named_after_it(mp):
    with mp.Pool(2) as pool:
        [name] = pool.map(funcs.worker_name, [1])
    assert name.endswith("-worker_name")
    assert mp.current_process().name == "MainProcess"


# --- lithops_bridge.storage.cloud_proxy ----------------------------------------------------
def test_cloud_proxy_files_here_and_on_the_workers(executor, lithops_config):
    """Lithops 3.x (lithops/storage/cloud_proxy.py): ``open`` reads and writes a key
    (a write is stored when the file closes), ``os.listdir``/``walk``/``remove`` and
    ``os.path.exists``/``isfile``/``isdir`` work on the bucket's keys (the bridge's
    own ``lithops.*`` keys hidden), anything else is the real ``os``; CloudStorage
    and CloudFileProxy pickle by config, so a function can use them on its worker."""
    from lithops_bridge.storage.cloud_proxy import CloudFileNotFoundError, CloudFileProxy, CloudStorage, cloud_open

    base = f"proxy-{uuid.uuid4().hex[:8]}"
    proxy = CloudFileProxy(CloudStorage(lithops_config))
    with proxy.open(f"{base}/in/a.txt", "w") as fh:
        fh.write("hello")
    with cloud_open(f"{base}/in/deep/b.bin", "wb", cloud_storage=proxy._storage) as fh:
        fh.write(b"\x00\x01")
    with proxy.open(f"{base}/in/a.txt", "a") as fh:
        fh.write(" world")
    assert proxy.open(f"{base}/in/a.txt").read() == "hello world"
    assert proxy.open(f"/{base}/in/deep/b.bin", "rb").read() == b"\x00\x01"
    assert proxy.listdir(f"{base}/in") == ["a.txt", "deep"]
    assert proxy.listdir(f"{base}/in", suffix_dirs=True) == ["a.txt", "deep/"]
    assert list(proxy.walk(base)) == [(base, ["in"], []), (f"{base}/in", ["deep"], ["a.txt"]), (f"{base}/in/deep", [], ["b.bin"])]
    assert proxy.path.isfile(f"{base}/in/a.txt") and not proxy.path.isfile(f"{base}/in")
    assert proxy.path.isdir(f"{base}/in") and proxy.path.exists(base) and not proxy.path.exists(f"{base}/nope")
    assert proxy.getcwd() == os.getcwd() and proxy.path.join("a", "b") == "a/b"
    assert executor.call_async(funcs.append_file, (proxy, f"{base}/in/a.txt", f"{base}/out/A.txt")).result() == (True, ["A.txt"])
    assert proxy.open(f"{base}/out/A.txt").read() == "HELLO WORLD"
    assert not [n for n in proxy.listdir("") if n.startswith("lithops.")]  # job objects of the standalone backend
    proxy.remove(f"{base}/out/A.txt")
    assert not proxy.path.exists(f"{base}/out")
    with pytest.raises(CloudFileNotFoundError):
        proxy.open(f"{base}/out/A.txt")
    with pytest.raises(FileNotFoundError):
        proxy.listdir(f"{base}/out")
    with pytest.raises(ValueError, match="invalid mode"):
        proxy.open(f"{base}/x", "r+")


def test_cloud_proxy_module_uses_the_default_config(tmp_path, monkeypatch):
    """``from lithops.storage.cloud_proxy import os, open`` work on the default
    config's storage (here: no config, so localhost storage under the Ephemera home)."""
    from lithops_bridge.storage import cloud_proxy

    monkeypatch.setattr(cloud_proxy, "_default", None)
    with cloud_proxy.open("notes/today.txt", "w") as fh:
        fh.write("kept")
    assert cloud_proxy.os.listdir("notes") == ["today.txt"] and cloud_proxy.open("notes/today.txt").read() == "kept"
    assert cloud_proxy.default_storage().backend == "localhost"
    assert (tmp_path / "ephemera-home" / "storage" / "lithops-bridge" / "notes" / "today.txt").read_text() == "kept"
