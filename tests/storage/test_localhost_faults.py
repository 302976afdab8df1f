"""Localhost storage under write faults (issue 11, defects 2 and 11), and the retry of
final writes: every failure is a named StorageError, retryable only when it may pass."""

from __future__ import annotations

import errno
import os
from datetime import timedelta

import pytest

from ephemera.errors import StorageError
from ephemera.storage.localhost.backend import LocalhostStorage
from ephemera.storage.retry import retry_transient
from ephemera.timeutil import now_utc


@pytest.fixture
def store(tmp_path):
    s = LocalhostStorage(tmp_path / "root")
    s.create_bucket("bkt")
    return s


def test_key_under_an_existing_object_is_a_named_error(store):
    """S3 keeps 'file' and 'file/child' as two keys; this backend cannot, and says so."""
    store.put("bkt", "file", b"1")
    with pytest.raises(StorageError) as info:
        store.put("bkt", "file/child", b"2")
    assert "'file' exists" in info.value.message and not info.value.retryable
    with pytest.raises(StorageError):
        store.put_if_absent("bkt", "file/child/deeper", b"3")
    store.put("bkt", "dir/child", b"2")
    with pytest.raises(StorageError) as info:
        store.put("bkt", "dir", b"1")
    assert "folder" in info.value.message
    assert [i.key for i in store.list("bkt")] == ["dir/child", "file"]
    assert not os.listdir(store.root / ".tmp"), "a refused write left its temp file"


def test_full_disk_is_a_retryable_storage_error(store, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(StorageError) as info:
        store.put("bkt", "out/_SUCCESS.json", b"{}")
    assert info.value.retryable and "No space left" in info.value.message


def test_retry_transient_retries_until_it_passes_and_never_a_fatal_error():
    calls, waits = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise StorageError("disk full", retryable=True)
        return "written"

    assert retry_transient(flaky, "marker", now_utc() + timedelta(minutes=5), sleep=waits.append) == "written"
    assert len(calls) == 3 and waits == [0.5, 1.0]

    def fatal():
        calls.append(1)
        raise StorageError("access denied for good")

    calls.clear()
    with pytest.raises(StorageError):
        retry_transient(fatal, "marker", now_utc() + timedelta(minutes=5), sleep=waits.append)
    assert len(calls) == 1


def test_retry_transient_stops_at_the_deadline():
    def always():
        raise StorageError("throttled", retryable=True)

    with pytest.raises(StorageError, match="throttled"):
        retry_transient(always, "marker", now_utc() - timedelta(seconds=1), sleep=lambda s: None)
