"""The VM side of the standalone backend (TaskServer) in this process, over a storage that
fails on demand: result uploads retried, claims retried, no call run twice."""

from __future__ import annotations

import json
import pickle
import secrets
import time
import uuid
from datetime import datetime, timezone

import pytest

import lithops_bridge as lithops
from ephemera.errors import StorageError
from lithops_bridge.backends.standalone import keys
from lithops_bridge.backends.standalone.keys import JOB_KIND
from lithops_bridge.backends.standalone.order import claim_order, start_offset
from lithops_bridge.backends.standalone.server import TaskServer
from lithops_bridge.job import factored_chunks, first_round
from lithops_bridge.errors import BridgeError
from tests.bridge import funcs

RESULT_SLOT = "/00000.01"  # batch 0's slot after its first claim: where its results go
CLAIM_SLOT = "/00000.00"  # batch 0's first claim


class FlakyStore:
    """Ephemera storage whose put / put_if_absent fail the first N times for keys containing a marker."""

    def __init__(self, inner):
        self.inner = inner
        self.fail_put: dict[str, int] = {}  # key marker -> failures left
        self.deleted: list[str] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _maybe_fail(self, key):
        for marker, left in self.fail_put.items():
            if marker in key and left > 0:
                self.fail_put[marker] = left - 1
                raise StorageError(f"injected failure writing {key}")

    def put(self, bucket, key, data):
        self._maybe_fail(key)
        return self.inner.put(bucket, key, data)

    def put_if_absent(self, bucket, key, data):
        self._maybe_fail(key)
        return self.inner.put_if_absent(bucket, key, data)

    def delete(self, bucket, key):
        self.deleted.append(key)
        return self.inner.delete(bucket, key)


@pytest.fixture
def vm(tmp_path):
    """One "VM": a TaskServer (2 processes) in this process, with a fresh heartbeat; and its client config."""
    from ephemera.assembly import load_config
    from ephemera.assembly import get_storage
    from lithops_bridge.backends.standalone.keys import server_key as heartbeat_key

    bucket, run_id = "srv", f"srv-{uuid.uuid4().hex[:8]}"
    store = get_storage(
        load_config(
            {
                "storage": {"backend": "localhost", "bucket": bucket},
                "localhost": {"root": str(tmp_path / "storage")},
                "home": str(tmp_path / "home"),
            }
        )
    )
    store.create_bucket(bucket)
    beat = {"run_id": run_id, "worker": 1, "state": "idle", "worker_processes": 2, "at": datetime.now(timezone.utc).isoformat()}
    store.put(bucket, heartbeat_key(run_id, 1), json.dumps(beat).encode())
    flaky = FlakyStore(store)
    run_key = secrets.token_hex(32)
    server = TaskServer(flaky, bucket, run_id, 1, 2, {}, run_key)
    server.upload_delays = (0.0, 0.01, 0.01)
    server.store_ = flaky
    server.config = {
        "lithops": {"backend": "standalone", "storage": "localhost"},
        "standalone": {"run_id": run_id, "run_key": run_key, "worker_processes": 2},
        "localhost": {"storage_bucket": bucket, "storage_root": str(tmp_path / "storage")},
    }
    server.start()
    yield server
    server.stop()


def test_a_failed_result_upload_is_retried(vm):
    vm.store_.fail_put = {RESULT_SLOT: 2}
    with lithops.FunctionExecutor(config=vm.config) as fexec:
        fut = fexec.call_async(funcs.double, 21)
        lithops.wait([fut], timeout=20)
        assert fut.result() == 42
    assert vm.store_.fail_put[RESULT_SLOT] == 0


def test_results_that_cannot_be_written_fail_the_calls(vm):
    vm.store_.fail_put = {RESULT_SLOT: len(vm.upload_delays)}  # every attempt fails; the failure outcomes go through
    with lithops.FunctionExecutor(config=vm.config) as fexec:
        fut = fexec.call_async(funcs.double, 1)
        lithops.wait([fut], timeout=20, throw_except=False)
        with pytest.raises(BridgeError, match="could not write their results .*injected failure"):
            fut.result()


def test_when_storage_refuses_even_failure_outcomes_the_claim_is_released_and_the_batch_runs_again(vm):
    vm.store_.fail_put = {RESULT_SLOT: len(vm.upload_delays) + 1}
    with lithops.FunctionExecutor(config=vm.config) as fexec:
        fut = fexec.call_async(funcs.double, 5)
        lithops.wait([fut], timeout=20)
        assert fut.result() == 10
    assert keys.slot_key(vm.run_id, fut.job_key, 0, 0) in vm.store_.deleted


def test_a_failed_claim_is_tried_again(vm):
    vm.store_.fail_put = {CLAIM_SLOT: 1}
    with lithops.FunctionExecutor(config=vm.config) as fexec:
        fut = fexec.call_async(funcs.double, 4)
        lithops.wait([fut], timeout=20)
        assert fut.result() == 8
    assert vm.store_.fail_put[CLAIM_SLOT] == 0


def test_a_pool_dying_while_the_agent_stops_reports_nothing(vm):
    """Stopping: the killed pool's calls are not uploaded as crashes; the client sees the stopped heartbeat."""
    with lithops.FunctionExecutor(config=vm.config) as fexec:
        fut = fexec.call_async(funcs.sleepy, 60)
        deadline, cf = time.monotonic() + 20, None
        while time.monotonic() < deadline and cf is None:
            with vm._inflight_lock:
                cf = vm._inflight.get((fut.job_key, 0), {}).get("future")
            time.sleep(0.01)
        assert cf is not None, "the call never started on the VM"
        vm.stopping.set()
        vm._kill_pool()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not cf.done():
            time.sleep(0.01)
        assert cf.done()
        vm._batch_done(fut.job_key, 0, cf)  # what the pool's callback does, in case it has not run yet
        vm._uploads.shutdown(wait=True)
        slots = [i.key for i in vm.store_.list(vm.bucket, keys.batches_prefix(vm.run_id, fut.job_key))]
        assert slots == [keys.slot_key(vm.run_id, fut.job_key, 0, 0)]  # the claim, and no result after it


def test_the_watchdog_fails_the_other_batches_it_kills_instead_of_running_them_again(vm, tmp_path):
    runs = tmp_path / "runs.txt"
    other_cfg = {**vm.config, "standalone": {**vm.config["standalone"], "hard_dismantle_timeout": 600}}
    late_cfg = {**vm.config, "standalone": {**vm.config["standalone"], "hard_dismantle_timeout": 1}}
    with lithops.FunctionExecutor(config=other_cfg) as other_exec, lithops.FunctionExecutor(config=late_cfg) as late_exec:
        other = other_exec.call_async(funcs.mark_and_sleep, (str(runs), 60))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not runs.exists():
            time.sleep(0.01)
        assert runs.exists(), "the first call never started"
        late = late_exec.call_async(funcs.sleepy, 60)  # shares the pool, exceeds its 1 s limit
        lithops.wait([other, late], timeout=30, throw_except=False)
        with pytest.raises(TimeoutError, match="hard_dismantle_timeout of 1 seconds"):
            late.result()
        with pytest.raises(BridgeError, match="not run again"):
            other.result()
    assert len(runs.read_text().splitlines()) == 1  # the killed call did not run a second time


def test_vms_start_claiming_at_evenly_spread_batches():
    """Spread over the first round: with factored batches (two of 250 calls, then 125s),
    two VMs start at the two large ones."""
    assert [start_offset(w, [1, 2], first_round(factored_chunks(1000, 2, 125))) for w in (1, 2)] == [0, 1]
    assert [start_offset(w, [1, 2], 4) for w in (1, 2)] == [0, 2]
    assert [start_offset(w, [0, 1, 2], 3) for w in (0, 1, 2)] == [0, 1, 2]
    assert [start_offset(w, [0, 1, 2], 7) for w in (0, 1, 2)] == [0, 2, 4]
    assert start_offset(5, [0, 1], 4) in range(4) and start_offset(0, [0], 1) == 0


@pytest.mark.parametrize(
    "n, procs, workers", [(1000, 2, [1, 2]), (1000, 4, [1, 2]), (4, 4, [1, 2]), (7, 2, [0, 1, 2]), (1, 2, [1, 2])]
)
def test_each_vm_tries_every_batch_once_from_its_own_share(n, procs, workers):
    """A VM tries its share of the first round (the large batches) first, then the later
    batches from its own place: every batch once, and two VMs reach for the same batch
    only when there are fewer batches than VMs."""
    batches = factored_chunks(n, procs, max(1, -(-n // (4 * procs))))
    orders = {w: claim_order(w, workers, batches) for w in workers}
    assert all(sorted(order) == list(range(len(batches))) for order in orders.values())
    share = max(1, first_round(batches) // len(workers))
    for w, order in orders.items():
        assert all(b < first_round(batches) for b in order[:share])
    if first_round(batches) >= len(workers):  # no batch in two VMs' shares of the first round
        shares = [order[:share] for order in orders.values()]
        assert len({b for f in shares for b in f}) == share * len(workers)
    if len(batches) - first_round(batches) >= len(workers):  # nor two VMs' first later batch
        assert len({order[share] for order in orders.values()}) == len(workers)
    assert sorted(claim_order(9, workers, batches)) == list(range(len(batches)))  # a VM that joined later


def test_the_job_names_the_live_vms(vm):
    with lithops.FunctionExecutor(config=vm.config) as fexec:
        seen = []
        original = fexec.compute_handler.store.put

        def spy(bucket, key, data):
            if "/queue/" in key:
                seen.append(pickle.loads(fexec.compute_handler.seal.unseal(JOB_KIND, key, data)))
            return original(bucket, key, data)

        fexec.compute_handler.store.put = spy
        assert fexec.call_async(funcs.double, 3).result() == 6
    assert seen and seen[0]["workers"] == [1]


def test_a_job_in_another_bridge_version_format_fails_its_calls_with_the_fix(vm, monkeypatch):
    """A job whose argument pickles are not one per batch (a client of another bridge
    version) fails its calls with a BridgeError naming the fix, instead of leaving a
    claimed batch that no VM runs (the client would wait forever)."""
    from lithops_bridge.job import Job
    from lithops_bridge.pickling import dumps

    monkeypatch.setattr(Job, "pack", lambda self, batches: [dumps(d) for d in self.data] + [b""])
    with lithops.FunctionExecutor(config=vm.config) as fexec:
        fs = fexec.map(funcs.double, [1, 2, 3])
        lithops.wait(fs, timeout=20, throw_except=False)
        for fut in fs:
            with pytest.raises(BridgeError, match="job format differs .*same ephemera version"):
                fut.result()


def test_numpy_in_a_call_runs_the_vms_cpus_shared_among_the_pools_processes(vm):
    """The pool has 2 processes: a call's BLAS library starts ``cpus // 2`` threads (at
    least one), not one per CPU in each process (see tests/bridge/test_threads.py)."""
    import os

    from lithops_bridge.threads import THREAD_VARS, usable_cpus

    share = str(max(1, usable_cpus() // 2))
    expected = {name: os.environ.get(name, share) for name in THREAD_VARS}
    with lithops.FunctionExecutor(config=vm.config) as fexec:
        counts, env = fexec.call_async(funcs.blas_threads, 0).result()
    assert env == expected
    if "OMP_NUM_THREADS" not in os.environ and "OPENBLAS_NUM_THREADS" not in os.environ:
        assert counts == [int(share)]


class CountingStore(FlakyStore):
    """FlakyStore that counts conditional writes and listings; ``land_then_fail``: key
    markers whose first conditional write lands and then reports a failure (a lost reply)."""

    def __init__(self, inner):
        super().__init__(inner)
        self.conditional: list[str] = []
        self.listings = 0
        self.land_then_fail: set[str] = set()

    def put_if_absent(self, bucket, key, data):
        self.conditional.append(key)
        for marker in list(self.land_then_fail):
            if marker in key:
                self.land_then_fail.discard(marker)
                self.inner.put_if_absent(bucket, key, data)
                raise StorageError(f"injected: the write of {key} landed, its reply was lost")
        return super().put_if_absent(bucket, key, data)

    def list(self, bucket, prefix="", start_after=""):
        self.listings += 1
        return self.inner.list(bucket, prefix, start_after)


@pytest.fixture
def idle_vm(vm):
    """A TaskServer of the same run that claims but runs nothing (its ``ran`` lists what it would run)."""
    store = CountingStore(vm.store_.inner)
    server = TaskServer(store, vm.bucket, vm.run_id, 2, 1, {}, vm.config["standalone"]["run_key"])
    server.ran = []
    server._run = lambda job, b, slot: server.ran.append(b)
    yield server
    server.stop()


def _job(server: TaskServer, n: int, start: int, queued: bool = True) -> dict:
    """A job as ``server`` holds it once loaded (in the queue unless not ``queued``)."""
    jk = f"e{uuid.uuid4().hex[:6]}-M000"
    if queued:  # servers only check that it is there
        server.store.put(server.bucket, keys.queue_key(server.run_id, jk), b"queued")
    order = [(start + i) % n for i in range(n)]
    return {
        "job_key": jk,
        "batches": [(i, i + 1) for i in range(n)],
        "worker_processes": 1,
        "_order": order,
        "_next": 0,
        "_tried": set(),
        "_retry": set(),
        "_final": set(),
    }


def test_a_vm_that_finds_its_batch_taken_lists_the_job_once_instead_of_trying_each_batch(vm, idle_vm):
    """Another VM holds batches 1-5 of a 6-batch job and this VM starts at batch 1: its
    claim fails, one listing of the job's slots names the other taken batches, and it
    claims batch 0 alone: 2 conditional writes instead of 6 (on IBM COS each waits
    ``claim_settle``)."""
    job = _job(idle_vm, 6, 1)
    for b in range(1, 6):
        assert _claim_as(vm, job, b)
    idle_vm._claim_from(job)
    assert idle_vm.ran == [0]
    assert [k.rsplit("/", 1)[1] for k in idle_vm.store.conditional] == ["00001.00", "00000.00"]
    assert idle_vm.store.listings == 1


def test_a_claim_whose_reply_was_lost_is_tried_again_not_skipped_as_taken(vm, idle_vm):
    """This VM's claim of batch 1 lands but its reply is lost (a storage error): the
    listing after another VM's batch 2 names batch 1 as taken, yet the VM claims it
    again with the same token, recognises its own claim, and runs it."""
    job = _job(idle_vm, 3, 1)
    idle_vm.store.land_then_fail.add("/00001.00")
    with pytest.raises(StorageError, match="reply was lost"):
        idle_vm._claim_from(job)
    _claim_as(vm, job, 2)
    idle_vm._claim_from(job)
    assert idle_vm.ran == [0, 1]


def test_a_job_cleaned_up_after_a_vm_loaded_it_is_not_run_again(vm, idle_vm):
    """The client finished a job and deleted its queue entry, then its slots, after this
    VM had loaded it: batch 0's slot 0 is free again, and the VM's claim lands, but the
    VM sees the job gone, deletes its claim, runs nothing and tries no other batch."""
    job = _job(idle_vm, 4, 0, queued=False)
    idle_vm._claim_from(job)
    assert idle_vm.ran == []
    assert list(idle_vm.store.list(idle_vm.bucket, keys.job_prefix(idle_vm.run_id, job["job_key"]))) == []
    assert len(idle_vm.store.conditional) == 1 and job["_tried"] == {0, 1, 2, 3}


def _claim_as(server: TaskServer, job: dict, b: int) -> bool:
    """``server`` (another VM of the run) owns slot 0 of batch ``b``."""
    from lithops_bridge.backends.standalone import slots

    key = keys.slot_key(server.run_id, job["job_key"], b, 0)
    return slots.take(server.store, server.bucket, key, server._claim_body(job["job_key"], b, 0), server.seal)


def test_back_to_back_submits_of_a_process_reuse_the_live_vms_for_a_second(vm, monkeypatch):
    """A script's maps, each with its own executor, read the run's presence objects once
    per ``PRESENCE_FOR`` seconds; finding no live VM is never reused, so a run without one
    fails every submit at once."""
    from lithops_bridge.backends.standalone import backend as sa_backend

    reads: list[str] = []
    original = sa_backend.StandaloneBackend.heartbeats

    def counting(self):
        reads.append(self.run_id)
        return original(self)

    monkeypatch.setattr(sa_backend.StandaloneBackend, "heartbeats", counting)
    monkeypatch.setattr(sa_backend, "PRESENCE_FOR", 60.0)
    for i in range(3):
        with lithops.FunctionExecutor(config=vm.config) as fexec:
            assert fexec.get_result([fexec.call_async(funcs.double, i)], timeout=30) == 2 * i
    assert reads == [vm.run_id]
    monkeypatch.setattr(sa_backend, "PRESENCE_FOR", 0.0)
    with lithops.FunctionExecutor(config=vm.config) as fexec:
        assert fexec.get_result([fexec.call_async(funcs.double, 5)], timeout=30) == 10
    assert reads == [vm.run_id] * 2  # older than PRESENCE_FOR: read again

    monkeypatch.setattr(sa_backend, "PRESENCE_FOR", 60.0)
    nobody = {**vm.config, "standalone": {**vm.config["standalone"], "run_id": "no-such-run"}}
    for _ in range(2):
        with lithops.FunctionExecutor(config=nobody) as fexec:
            with pytest.raises(BridgeError, match="no agent of run 'no-such-run' is alive"):
                fexec.call_async(funcs.double, 1)
    assert reads.count("no-such-run") == 2
