"""When a VM lists its job queue: when a client rings and at least every poll interval;
the end of one of its own batches claims from the last listing, and a take-over of a
dead VM's batches lists again first."""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import datetime, timezone

import cloudpickle
import pytest

import lithops_bridge as lithops
from ephemera.assembly import get_storage, load_config
from lithops_bridge.backends.standalone import keys, reclaim, wake
from lithops_bridge.backends.standalone import server as server_module
from lithops_bridge.backends.standalone.keys import JOB_KIND
from lithops_bridge.backends.standalone.server import TaskServer
from tests.bridge import funcs
from tests.bridge.test_server import vm  # noqa: F401 - the in-process VM fixture


def test_one_queue_listing_serves_a_job_its_ring_announced(vm):  # noqa: F811
    """With a minute between the VM's polls, the client's ring on submit lists the queue
    at once, and each finished batch claims the next one from that listing instead of
    listing again (on a cloud every listing is a paid request). Eight one-call batches
    over two processes: six of them are claimed when a batch ends."""
    if vm._bell is None:
        pytest.skip("no private wake folder on this machine")
    vm.poll_min = vm.poll_max = 60.0
    time.sleep(0.1)  # the server's loop is now in a minute-long wait
    queue = keys.queue_prefix(vm.run_id)
    listings: list[str] = []
    inner_list = vm.store_.inner.list

    def counting_list(bucket, prefix="", start_after=""):
        if prefix == queue:
            listings.append(prefix)
        return inner_list(bucket, prefix, start_after)

    vm.store_.list = counting_list  # the server's store is this FlakyStore
    config = {**vm.config, "standalone": {**vm.config["standalone"], "poll_interval": 60}}
    with lithops.FunctionExecutor(config=config) as fexec:
        futures = fexec.map(funcs.double, range(8), chunksize=1)
        assert fexec.get_result(futures, timeout=30) == [2 * i for i in range(8)]
    assert len(listings) == 1


def test_a_ring_without_news_does_not_list_the_queue_but_a_poll_interval_does(vm):  # noqa: F811
    """The server's own wake-up (a batch ended) reuses the last listing; a hint from
    anyone else (a client's "job") is news; a listing older than the poll interval is
    made again whatever woke the server."""
    if vm._bell is None:
        pytest.skip("no private wake folder on this machine")
    vm.poll_min = vm.poll_max = 60.0
    vm.stopping.set()  # the server's loop ends: this test reads its bell by hand
    vm._wake.set()
    assert vm.thread is not None
    vm.thread.join(10)
    assert not vm.thread.is_alive()
    vm._news()  # what rang before: the loop's own wake-ups
    assert vm._news() is False  # nothing rang
    vm._wake.set()  # what the end of a batch does
    assert vm._wake.wait(5) and vm._news() is False
    assert wake.ring(vm._bell.name, "job") and vm._wake.wait(5) and vm._news() is True
    first = vm._queued(news=False)
    assert vm._queued(news=False) is first  # reused: not a minute old
    vm.poll_min = 0.0
    assert vm._queued(news=False) is not first  # listed again


def test_a_take_over_never_reaches_for_a_job_cleaned_since_the_last_listing(tmp_path, monkeypatch):
    """A batch's end claims from the last queue listing; a take-over of a dead VM's
    batches lists the queue again first, so a job its client has cleaned up meanwhile is
    not run again (its slots are gone, so a claim would look free)."""
    bucket, run_id, run_key, jk = "srv", f"srv-{uuid.uuid4().hex[:8]}", secrets.token_hex(32), "ex-M000"
    store = get_storage(
        load_config({"storage": {"backend": "localhost", "bucket": bucket}, "localhost": {"root": str(tmp_path / "s")}})
    )
    store.create_bucket(bucket)
    server = TaskServer(store, bucket, run_id, 1, 2, {}, run_key, cloud=True)  # never started: driven by hand
    job = {"job_key": jk, "batches": [(0, 1)], "workers": [1, 2], "submitted_at": datetime.now(timezone.utc).isoformat()}
    key = keys.queue_key(run_id, jk)
    store.put(bucket, key, server.seal.seal(JOB_KIND, key, cloudpickle.dumps(job)))
    assert server._queued(news=True) == [jk] and server._load(jk) is not None
    store.delete(bucket, key)  # the client finished the job and cleaned it up
    taken: list[str] = []
    monkeypatch.setattr(reclaim, "suspects", lambda beats, submitted: True)  # another VM went silent
    monkeypatch.setattr(reclaim, "orphans", lambda *a, **k: [(0, 0)])  # ... holding batch 0
    monkeypatch.setattr(server_module.slots, "take", lambda store, bucket, key, body, seal: taken.append(key) or True)
    monkeypatch.setattr(server, "_run", lambda job, b, slot: taken.append(f"ran batch {b}"))
    assert server._take_over(server._queued(news=False)) is False  # the last listing still names the job
    assert taken == []
