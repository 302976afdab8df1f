"""The standalone backend on real local VMs (agent processes) over localhost storage."""

from __future__ import annotations

import json
import time
import uuid

import pytest

import lithops_bridge as lithops
from ephemera.model.heartbeat import VMState
from ephemera.vm.localrun import LocalRun
from lithops_bridge.errors import BridgeError
from tests.bridge import funcs
from tests.bridge.conftest import pid_alive

pytestmark = pytest.mark.slow  # starts agent processes (local VMs)


def test_map_spreads_over_every_vm_and_runs_each_call_once(vms, config_for):
    token = uuid.uuid4().hex
    with lithops.FunctionExecutor(config=config_for("standalone")) as fexec:
        fs = fexec.map(funcs.claim_once, [token] * 200)
        assert fexec.get_result(fs) == [True] * 200  # no call ran twice
        slow = fexec.map(funcs.sleepy, [0.05] * 40)
        fexec.get_result(slow)
    assert {f.stats["worker_host"] for f in slow} == {"vm-1", "vm-2"}


def test_job_objects_are_cleaned_after_results(vms, config_for):
    from lithops_bridge.backends.standalone import keys

    with lithops.FunctionExecutor(config=config_for("standalone")) as fexec:
        fs = fexec.map(funcs.double, range(10))
        fexec.get_result(fs)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and fexec.storage.list_keys(vms.bucket, keys.job_prefix(vms.run_id, fs[0].job_key)):
            time.sleep(0.05)
        assert fexec.storage.list_keys(vms.bucket, keys.job_prefix(vms.run_id, fs[0].job_key)) == []
        assert fexec.storage.list_keys(vms.bucket, keys.queue_key(vms.run_id, fs[0].job_key)) == []


@pytest.fixture
def own_run(tmp_path):
    """A private one-VM run, for tests that kill pools (the shared `vms` stay untouched)."""
    run = LocalRun(tmp_path / "own", workers=1, worker_processes=1, heartbeat_interval=0.2).start()
    yield run
    pids = run.pids()
    run.close()
    assert not [p for p in pids if pid_alive(p)]


@pytest.fixture
def isolated_config(backend, request) -> dict:
    """Per backend, a config whose pool no other test shares: a private pool size, or a private run."""
    if backend == "localhost":
        return {"lithops": {"backend": "localhost", "storage": "localhost"}, "localhost": {"worker_processes": 3}}
    return request.getfixturevalue("own_run").lithops_config


def _wait_claim(run: LocalRun, storage, job_key: str, batch: int = 0) -> None:
    from lithops_bridge.backends.standalone import keys

    key = keys.slot_key(run.run_id, job_key, batch, 0)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not storage.list_keys(run.bucket, key):
        time.sleep(0.02)
    assert storage.list_keys(run.bucket, key) == [key], f"batch {batch} of {job_key} was never claimed"


def test_hard_dismantle_timeout_kills_the_calls_on_the_vm(own_run):
    config = own_run.lithops_config
    config["standalone"]["hard_dismantle_timeout"] = 1
    with lithops.FunctionExecutor(config=config) as fexec:
        fut = fexec.call_async(funcs.sleepy, 60)
        with pytest.raises(TimeoutError, match="hard_dismantle_timeout of 1 seconds"):
            fut.result()
        assert fexec.call_async(funcs.double, 2).result() == 4  # a fresh pool serves the next job


def test_worker_process_death_fails_only_that_call(isolated_config):
    from concurrent.futures.process import BrokenProcessPool

    with lithops.FunctionExecutor(config=isolated_config) as fexec:
        with pytest.raises(BrokenProcessPool, match="died while running"):
            fexec.call_async(funcs.exit_process, 1).result()
        assert fexec.call_async(funcs.double, 3).result() == 6


def test_a_stopped_vm_fails_its_calls_instead_of_hanging(tmp_path, monkeypatch):
    from lithops_bridge.backends.standalone import backend as sa_backend

    monkeypatch.setattr(sa_backend, "CHECK_EVERY", 0.2)
    run = LocalRun(tmp_path, workers=1, worker_processes=1, heartbeat_interval=0.2).start()
    try:
        with lithops.FunctionExecutor(config=run.lithops_config) as fexec:
            fut = fexec.call_async(funcs.sleepy, 60)
            _wait_claim(run, fexec.storage, fut.job_key)
            pids = run.pids()
            run.close()
            assert not [p for p in pids if pid_alive(p)]
            with pytest.raises(BridgeError, match="stopped while running"):
                fut.result()
    finally:
        run.close()


def test_submitting_to_a_run_without_a_live_agent_fails_at_once(tmp_path, config_for):
    config = config_for("standalone")
    config["standalone"]["run_id"] = "no-such-run"
    with lithops.FunctionExecutor(config=config) as fexec:
        with pytest.raises(BridgeError, match="no agent of run 'no-such-run' is alive"):
            fexec.map(funcs.double, [1])
    run = LocalRun(tmp_path, workers=1, worker_processes=1).start()
    run.close()  # a destroyed run: its agents' last heartbeats say "stopped"
    with lithops.FunctionExecutor(config=run.lithops_config) as fexec:
        with pytest.raises(BridgeError, match="is alive"):
            fexec.call_async(funcs.double, 1)


def test_unclaimed_batches_fail_once_no_agent_is_left(tmp_path, monkeypatch):
    from lithops_bridge.backends.standalone import backend as sa_backend

    monkeypatch.setattr(sa_backend, "CHECK_EVERY", 0.2)
    run = LocalRun(tmp_path, workers=1, worker_processes=1, heartbeat_interval=0.2).start()
    try:
        with lithops.FunctionExecutor(config=run.lithops_config) as fexec:
            fs = fexec.map(funcs.sleepy, [60, 60], chunksize=1)  # one process: the second batch waits its turn
            _wait_claim(run, fexec.storage, fs[0].job_key, 0)
            run.close()
            lithops.wait(fs, timeout=30, throw_except=False)
            with pytest.raises(BridgeError, match="stopped while running calls 0-0"):
                fs[0].result()
            with pytest.raises(BridgeError, match="no agent of run .* is alive any more to run calls 1-1"):
                fs[1].result()
    finally:
        run.close()


def test_local_run_agents_end_at_their_hard_deadline(tmp_path):
    run = LocalRun(tmp_path, workers=1, worker_processes=1, heartbeat_interval=0.2, hard_deadline=2).start()
    try:
        pids = run.pids()
        assert pids and all(pid_alive(p) for p in pids)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
            time.sleep(0.1)
        assert not [p for p in pids if pid_alive(p)], "the agent outlived its hard deadline"
        assert run.heartbeats()[1].state == VMState.STOPPED
    finally:
        run.close()


def test_workload_on_worker_0_uses_the_standalone_backend_over_all_vms(tmp_path):
    run = LocalRun(
        tmp_path, workers=2, worker_processes=2, heartbeat_interval=0.5, entry="tests.bridge.workload_probe:main"
    ).start()
    try:
        from lithops_bridge.storage import Storage

        st = Storage(
            storage_config={
                "backend": "localhost",
                "localhost": {"storage_bucket": run.bucket, "storage_root": str(run.root / "storage")},
            }
        )
        marker = f"outputs/{run.run_id}/_SUCCESS.json"
        deadline = time.monotonic() + 120  # the probe maps for up to a minute
        while time.monotonic() < deadline and marker not in st.list_keys(run.bucket, f"outputs/{run.run_id}/"):
            assert f"outputs/{run.run_id}/_FAILURE.json" not in st.list_keys(run.bucket, f"outputs/{run.run_id}/"), st.get_object(
                run.bucket, f"outputs/{run.run_id}/_FAILURE.json"
            )
            time.sleep(0.1)
        result = json.loads(st.get_object(run.bucket, marker))["result"]
        assert result == {"backend": "standalone", "hosts": ["vm-0", "vm-1"]}
    finally:
        pids = run.pids()
        run.close()
    assert not [p for p in pids if pid_alive(p)]


def test_no_credentials_travel_in_the_job(vms, config_for):
    from lithops_bridge.backends.standalone import keys
    from lithops_bridge.backends.standalone.backend import StandaloneBackend
    from lithops_bridge.config import default_config, extract_storage_config
    from lithops_bridge.futures import ResponseFuture
    from lithops_bridge.job import Job, serialize_function

    secret = "job-secret-should-stay-home-4c1d"
    config = default_config(config_data=config_for("standalone"))
    storage_config = extract_storage_config(config)
    backend = StandaloneBackend(config, storage_config)
    job = Job(
        "secrettest",
        "M000",
        serialize_function(funcs.double),
        "double",
        [{"x": 1}],
        storage_config={"backend": "aws_s3", "aws_s3": {"secret_access_key": secret}},
    )
    fut = ResponseFuture("secrettest", "M000", 0)
    # read the queued payload before an agent takes (and the client cleans) it
    original_put = backend.store.put
    seen = []

    def spy(bucket, key, data):
        if key == keys.queue_key(vms.run_id, job.job_key):
            seen.append(bytes(data))
        return original_put(bucket, key, data)

    backend.store.put = spy
    backend.submit(job, [fut])
    assert fut.result() == 2
    assert seen and secret.encode() not in seen[0]
    backend.close()
