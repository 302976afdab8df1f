"""The claim protocol (put_if_absent without conditional PUT), and the aws_s3 fallback to it."""

from __future__ import annotations

import os
import threading
import time

import pytest

from ephemera.errors import StorageError
from ephemera.storage.aws_s3.backend import S3Storage
from ephemera.storage.aws_s3.config import S3Settings
from ephemera.storage.claims import _new_claim_key as new_claim_key
from ephemera.storage.claims import claims_prefix, put_if_absent_by_claims
from ephemera.storage.localhost.backend import LocalhostStorage
from tests.fakes.s3_server import start_s3_server
from tests.storage.conftest import S3_KEY_ID, S3_SECRET


def _s3(endpoint: str) -> S3Storage:
    return S3Storage(S3Settings(endpoint, "us-east-1", S3_KEY_ID, S3_SECRET), claim_settle=0.2)


def _race(stores, bucket: str, key: str, settle: float) -> dict[int, bool]:
    barrier = threading.Barrier(len(stores))
    results: dict[int, bool] = {}

    def contend(i: int) -> None:
        barrier.wait()
        results[i] = put_if_absent_by_claims(stores[i], bucket, key, f"owner-{i}".encode(), settle=settle)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_twenty_concurrent_callers_on_s3_exactly_one_wins(s3_endpoint, unique_bucket):
    stores = [_s3(s3_endpoint) for _ in range(20)]
    stores[0].create_bucket(unique_bucket)
    results = _race(stores, unique_bucket, "locks/apply", settle=0.5)
    winners = [i for i, created in results.items() if created]
    assert len(results) == 20 and len(winners) == 1
    assert stores[0].get(unique_bucket, "locks/apply") == f"owner-{winners[0]}".encode()
    assert list(stores[0].list(unique_bucket, claims_prefix("locks/apply"))) == []


def test_twenty_concurrent_callers_on_localhost_exactly_one_wins(tmp_path):
    stores = [LocalhostStorage(tmp_path) for _ in range(20)]
    stores[0].create_bucket("bkt")
    results = _race(stores, "bkt", "locks/apply", settle=0.2)
    winners = [i for i, created in results.items() if created]
    assert len(winners) == 1
    assert stores[0].get("bkt", "locks/apply") == f"owner-{winners[0]}".encode()
    assert [o.key for o in stores[0].list("bkt")] == ["locks/apply"]


def test_existing_object_is_never_overwritten(tmp_path):
    store = LocalhostStorage(tmp_path)
    store.put("bkt", "k", b"original")
    assert put_if_absent_by_claims(store, "bkt", "k", b"new", settle=0.0) is False
    assert store.get("bkt", "k") == b"original"


def test_loser_waits_for_the_earlier_claim_then_sees_the_object(s3_endpoint, unique_bucket):
    store = _s3(s3_endpoint)
    store.create_bucket(unique_bucket)
    theirs = new_claim_key("job")  # another caller's claim, earlier than ours
    store.put(unique_bucket, theirs, b"{}")
    sleeps = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:  # after we lost our first round: the other caller finishes
            store.put(unique_bucket, "job", b"theirs")
            store.delete(unique_bucket, theirs)

    assert put_if_absent_by_claims(store, unique_bucket, "job", b"ours", settle=0.1, sleep=sleep) is False
    assert store.get(unique_bucket, "job") == b"theirs"
    assert list(store.list(unique_bucket, "job.claims/")) == []


def test_earlier_claim_withdrawn_without_object_lets_us_win(tmp_path):
    store = LocalhostStorage(tmp_path)
    theirs = new_claim_key("job")
    store.put("bkt", theirs, b"{}")
    calls = []

    def sleep(seconds: float) -> None:
        calls.append(seconds)
        if len(calls) == 2:  # the other caller lost elsewhere and withdraws its claim
            store.delete("bkt", theirs)

    assert put_if_absent_by_claims(store, "bkt", "job", b"ours", settle=0.01, sleep=sleep) is True
    assert store.get("bkt", "job") == b"ours"


def test_stale_claim_of_crashed_caller_is_ignored_and_removed(tmp_path):
    store = LocalhostStorage(tmp_path)
    crashed = new_claim_key("job")
    store.put("bkt", crashed, b"{}")
    old = time.time() - 3600
    os.utime(tmp_path / "bkt" / crashed, (old, old))
    assert put_if_absent_by_claims(store, "bkt", "job", b"ours", settle=0.01, stale_after=60) is True
    assert [o.key for o in store.list("bkt")] == ["job"]


def test_unresolved_claims_raise_retryable_error(tmp_path):
    store = LocalhostStorage(tmp_path)
    blocker = new_claim_key("job")  # a live earlier claim that never resolves
    store.put("bkt", blocker, b"{}")
    with pytest.raises(StorageError) as err:
        put_if_absent_by_claims(store, "bkt", "job", b"ours", settle=0.01, stale_after=60, timeout=0)
    assert err.value.retryable is True
    assert "job.claims/" in str(err.value)
    assert [o.key for o in store.list("bkt")] == [blocker]  # our own claim was withdrawn


def test_invalid_timing_rejected(tmp_path):
    with pytest.raises(StorageError, match="settle"):
        put_if_absent_by_claims(LocalhostStorage(tmp_path), "bkt", "k", b"", settle=5, stale_after=1)


def test_s3_uses_conditional_put_when_supported(unique_bucket):
    log: list = []
    url, stop = start_s3_server(request_log=log)
    try:
        store = _s3(url)
        store.create_bucket(unique_bucket)
        assert store.put_if_absent(unique_bucket, "k", b"1") is True
        assert store.put_if_absent(unique_bucket, "k", b"2") is False
    finally:
        stop()
    puts = [r for r in log if r.method == "PUT" and r.path.endswith("/k")]
    assert len(puts) == 2 and all(r.headers.get("If-None-Match") == "*" for r in puts)
    assert not any(".claims/" in r.path for r in log)


def test_s3_falls_back_to_claims_when_endpoint_rejects_conditional_put(unique_bucket):
    log: list = []
    url, stop = start_s3_server(request_log=log, reject_conditional_put=True)
    try:
        store = _s3(url)
        store.create_bucket(unique_bucket)
        assert store.put_if_absent(unique_bucket, "k", b"1") is True
        assert store.conditional_put is False
        assert store.put_if_absent(unique_bucket, "k", b"2") is False
        assert store.get(unique_bucket, "k") == b"1"
        assert [o.key for o in store.list(unique_bucket)] == ["k"]
    finally:
        stop()
    conditional = [r for r in log if r.headers.get("If-None-Match")]
    assert len(conditional) == 1  # tried once, then remembered
    assert any(r.method == "PUT" and "/k.claims/" in r.path for r in log)


def test_a_failing_claim_withdrawal_does_not_mask_a_successful_write(tmp_path, caplog):
    class NoDeletes(LocalhostStorage):
        def delete(self, bucket, key):
            raise StorageError(f"delete of '{key}' in bucket '{bucket}' failed: HTTP 503", retryable=True)

    store = NoDeletes(tmp_path)
    store.create_bucket("bkt")
    assert put_if_absent_by_claims(store, "bkt", "job", b"ours", settle=0.0) is True
    assert store.get("bkt", "job") == b"ours"
    assert any("could not withdraw claim" in r.getMessage() for r in caplog.records)
