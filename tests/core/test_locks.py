"""Storage locks: mutual exclusion under concurrent contenders, an expired holder
broken exactly once, and no contender ever deleting a lock another one holds."""

from __future__ import annotations

import random
import threading
import time

import pytest

from ephemera import layout
from ephemera.locking.storage_lock import LockTimeout, StorageLock
from ephemera.model.ledger import Ledger
from ephemera.model.runs import RunRecord
from ephemera.storage.localhost.backend import LocalhostStorage

BUCKET = "state"


class JitteryStorage(LocalhostStorage):
    """Localhost storage whose reads of lock objects take a random few milliseconds,
    as a remote store's would: the window in which a contender acts on what it read."""

    def get(self, bucket, key, byte_range=None):
        data = super().get(bucket, key, byte_range)
        if key.startswith(layout.LOCKS):
            time.sleep(random.uniform(0, 0.03))
        return data


@pytest.fixture
def store(tmp_path):
    storage = JitteryStorage(tmp_path / "storage")
    storage.create_bucket(BUCKET)
    return storage


def _crashed_holder(store, name: str) -> None:
    """A holder that took the lock and died: its lock has already expired."""
    StorageLock(store, BUCKET, name, ttl=-1).acquire()  # never released


def test_concurrent_ledger_updates_lose_no_increment_past_an_expired_lock(store):
    ledger = Ledger(store, BUCKET)
    ledger.create(RunRecord(run_id="run-1", workspace="ws", engine="terraform"))
    _crashed_holder(store, "run-run-1")
    threads_n, per_thread = 8, 3
    barrier = threading.Barrier(threads_n)
    errors: list[BaseException] = []

    def increment(record: RunRecord) -> None:
        count = record.attempts.get("n", 0)
        time.sleep(0.005)  # some work between the read and the write
        record.attempts["n"] = count + 1

    def worker() -> None:
        try:
            barrier.wait()
            for _ in range(per_thread):
                ledger.update("run-1", increment)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    record = ledger.get("run-1")
    assert record.attempts["n"] == threads_n * per_thread, "an update was lost: two holders overlapped"
    assert record.version == 1 + threads_n * per_thread


def test_an_expired_lock_is_taken_over_and_a_live_one_is_not(store):
    _crashed_holder(store, "job")
    with StorageLock(store, BUCKET, "job", ttl=60, wait=5) as lock:
        assert lock.held
        with pytest.raises(LockTimeout, match="'job' is held by another process"):
            StorageLock(store, BUCKET, "job", ttl=60, wait=0).acquire()
    assert StorageLock(store, BUCKET, "job", ttl=60, wait=0).try_acquire()  # released: free again


def test_a_late_release_by_an_expired_holder_does_not_free_the_new_holder(store):
    old = StorageLock(store, BUCKET, "job", ttl=-1)
    old.acquire()  # expires at once, but its holder is still running
    new = StorageLock(store, BUCKET, "job", ttl=60, wait=5).acquire()
    old.release()  # the old holder finishes late
    assert not StorageLock(store, BUCKET, "job", ttl=60, wait=0).try_acquire(), "the new holder's lock was lost"
    new.release()
    assert StorageLock(store, BUCKET, "job", ttl=60, wait=0).try_acquire()


def test_old_generations_are_pruned(store):
    for _ in range(5):
        with StorageLock(store, BUCKET, "job", ttl=60, wait=5):
            pass
    keys = [o.key for o in store.list(BUCKET, layout.lock_key("job/"))]
    assert len(keys) <= 2, keys


def test_a_contender_paused_across_generations_does_not_take_a_held_lock(store):
    for _ in range(3):  # generations 1..3 come and go; 1 is pruned
        with StorageLock(store, BUCKET, "job", ttl=60, wait=5):
            pass
    holder = StorageLock(store, BUCKET, "job", ttl=60, wait=5).acquire()  # generation 4; 2 is pruned

    class Paused(StorageLock):
        """Listed the lock when generation 1 was the top and found it released, then
        paused: it goes on to create generation 2, which no longer exists."""

        listings = 0

        def _generations(self):
            self.listings += 1
            return [1] if self.listings == 1 else super()._generations()

        def _read(self, gen):
            return {"released": True}

    late = Paused(store, BUCKET, "job", ttl=60, wait=0)
    assert late.try_acquire() is False
    assert not late.held and holder.held
    assert not StorageLock(store, BUCKET, "job", ttl=60, wait=0).try_acquire(), "the holder's lock was taken"
    gens = [o.key.rsplit("/", 1)[1] for o in store.list(BUCKET, layout.lock_key("job/"))]
    assert "000000000002.json" not in gens  # the late contender withdrew its object


def test_a_stalled_contender_whose_generation_was_pruned_withdraws(tmp_path):
    from ephemera.locking.generations import Generations
    from ephemera.locking.workspace_lock import WorkspaceLock
    from ephemera.storage.localhost.backend import LocalhostStorage

    storage = LocalhostStorage(tmp_path)
    storage.create_bucket("state")
    gens = Generations(storage, "state", "ephemera/locks/workspaces/ws/")
    assert gens.claim(0, {"run_id": "a"})  # generation 1
    # a contender reads generation 1 and stalls; meanwhile the lock moves on to 4
    assert gens.claim(1, {"run_id": "b"}) and gens.claim(2, {"run_id": "c"}) and gens.claim(3, {"run_id": "d"})
    assert 2 not in gens.numbers()  # pruned by the holder of 4
    # the stalled contender creates generation 2 again, sees 4 above it, and withdraws
    assert not gens.claim(1, {"run_id": "stalled"})
    assert gens.numbers()[-1] == 4 and gens.current()[1]["run_id"] == "d"
    lock = WorkspaceLock(storage, "state", "ws")
    assert lock.holder()["run_id"] == "d"


HOLD_AND_WAIT = """
import sys, time
from ephemera.locking.storage_lock import StorageLock
from ephemera.storage.localhost.backend import LocalhostStorage
lock = StorageLock(LocalhostStorage(sys.argv[1]), "state", "run-x", ttl=600).acquire()
print("held", flush=True)
time.sleep(600)
"""


def _holder_process(store):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", HOLD_AND_WAIT, str(store.root)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_killed_holder_on_this_machine_frees_the_lock_before_its_expiry(store):
    """An action killed while it held a run's ledger lock (ttl 600 s here) must not hold
    up every later update of that run: a contender on the same machine sees the holder's
    process is gone and takes the lock at once."""
    proc = _holder_process(store)
    try:
        with pytest.raises(LockTimeout):
            StorageLock(store, BUCKET, "run-x", ttl=60, wait=0.2).acquire()  # a live holder keeps it
    finally:
        proc.kill()
        proc.wait()
    assert StorageLock(store, BUCKET, "run-x", ttl=60, wait=0).try_acquire()


def test_a_holder_on_another_machine_is_waited_for_until_its_expiry(store, monkeypatch):
    """From another host a pid proves nothing: even a holder that is gone frees the
    lock only at its expiry."""
    import socket

    proc = _holder_process(store)
    proc.kill()
    proc.wait()
    monkeypatch.setattr(socket, "gethostname", lambda: "another-vm")
    with pytest.raises(LockTimeout):
        StorageLock(store, BUCKET, "run-x", ttl=60, wait=0.2).acquire()
