"""Localhost ``put`` and ``put_if_absent`` share one write path (temporary file, moved
into place): same errors, same retries, no temporary file left behind either way."""

from __future__ import annotations

import os

import pytest

from ephemera.errors import StorageError
from ephemera.storage.localhost.backend import LocalhostStorage


@pytest.fixture
def store(tmp_path):
    s = LocalhostStorage(tmp_path / "root")
    s.create_bucket("bkt")
    return s


def _tmp_left(store: LocalhostStorage) -> list[str]:
    return os.listdir(store.root / ".tmp")


def test_put_and_put_if_absent_happy_path(store) -> None:
    assert store.put_if_absent("bkt", "x/one", b"1") is True
    assert store.put_if_absent("bkt", "x/one", b"2") is False
    assert store.get("bkt", "x/one") == b"1"
    info = store.put("bkt", "x/one", b"3")
    assert info.size == 1 and store.get("bkt", "x/one") == b"3"
    assert _tmp_left(store) == []


@pytest.mark.parametrize("method", ["put", "put_if_absent"])
def test_object_in_the_way_is_one_clear_error(store, method) -> None:
    store.put("bkt", "a", b"file")
    with pytest.raises(StorageError, match="the object 'a' exists"):
        getattr(store, method)("bkt", "a/b", b"x")
    assert _tmp_left(store) == []


@pytest.mark.parametrize("method", ["put", "put_if_absent"])
def test_parent_pruned_concurrently_is_retried(store, method, monkeypatch) -> None:
    """A concurrent delete prunes the key's folder between mkdir and the move: both retry."""
    real_mkdir = store._make_parent
    calls = []

    def racing_parent(path, bucket, key):
        real_mkdir(path, bucket, key)
        calls.append(1)
        if len(calls) == 1:
            os.rmdir(path.parent)

    monkeypatch.setattr(store, "_make_parent", racing_parent)
    result = getattr(store, method)("bkt", "d/e", b"x")
    assert len(calls) == 2 and store.get("bkt", "d/e") == b"x"
    assert result is True or result.key == "d/e"
    assert _tmp_left(store) == []


def test_put_over_a_folder_names_it(store) -> None:
    store.put("bkt", "a/b", b"x")
    with pytest.raises(StorageError, match="a folder of that name holds other objects"):
        store.put("bkt", "a", b"y")
    assert store.put_if_absent("bkt", "a", b"y") is False  # the name is taken
    assert _tmp_left(store) == []


@pytest.mark.parametrize("method", ["put", "put_if_absent"])
def test_folder_pruned_inside_mkdir_is_not_called_an_object(store, method, monkeypatch) -> None:
    """``Path.mkdir(exist_ok=True)`` raises FileExistsError when the folder existed at its
    ``os.mkdir`` but a concurrent delete pruned it before its ``is_dir()`` check (seen in
    CI as "the object 'lithops.jobs/<run>/queue' exists" with no such object): the write
    makes the folder again instead of blaming an object that is not there."""
    from pathlib import Path

    real_mkdir = Path.mkdir
    raised = []

    def flaky_mkdir(self, *args, **kwargs):
        if self.name == "queue" and not raised:
            raised.append(self)
            raise FileExistsError(17, "File exists", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", flaky_mkdir)
    result = getattr(store, method)("bkt", "run/queue/job.pickle", b"x")
    assert raised and store.get("bkt", "run/queue/job.pickle") == b"x"
    assert result is True or result.key == "run/queue/job.pickle"
    assert _tmp_left(store) == []


def test_a_put_consumed_at_once_still_returns_what_was_written(store, monkeypatch) -> None:
    """A queue entry's reader (a VM's server) may claim and delete it between the write and
    the writer's stat; S3's PUT answers with what was written whatever happens next."""
    import hashlib

    place = store._place

    def placed_then_consumed(*args, **kwargs):
        path = place(*args, **kwargs)
        path.unlink()
        return path

    monkeypatch.setattr(store, "_place", placed_then_consumed)
    info = store.put("bkt", "queue/job.pickle", b"abc")
    assert (info.key, info.size, info.etag) == ("queue/job.pickle", 3, hashlib.md5(b"abc").hexdigest())
    assert _tmp_left(store) == []


def test_a_listing_reads_no_object_until_its_etag_is_asked_for(store, monkeypatch) -> None:
    """A queue polled every few milliseconds lists its prefix each time: the listing stats
    each object and reads none (a job of many MiB is not hashed per poll); an etag asked
    for is the object's MD5, as S3 reports for a single-part object."""
    import builtins
    import hashlib

    store.put("bkt", "queue/a", b"a" * 100_000)
    store.put("bkt", "queue/b", b"bb")
    real_open, opened = builtins.open, []

    def counting_open(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    infos = list(store.list("bkt", "queue/"))
    assert [(i.key, i.size) for i in infos] == [("queue/a", 100_000), ("queue/b", 2)]
    assert opened == []
    assert infos[1].etag == hashlib.md5(b"bb").hexdigest() and len(opened) == 1
    assert store.head("bkt", "queue/a").etag == infos[0].etag == hashlib.md5(b"a" * 100_000).hexdigest()


def test_an_etag_read_after_its_object_went_reports_no_content_and_no_path(store, monkeypatch) -> None:
    """Deleted between the listing and the etag: the MD5 of no content (what a listing
    taken later would not show at all); any other read error names the key, never the root."""
    import builtins
    import errno
    import hashlib

    store.put("bkt", "k1", b"1")
    store.put("bkt", "k2", b"2")
    first, second = list(store.list("bkt"))
    store.delete("bkt", "k1")
    assert first.etag == hashlib.md5(b"").hexdigest()
    real_open = builtins.open

    def failing_open(path, *args, **kwargs):
        if str(store.root) in str(path):
            raise OSError(errno.EIO, "Input/output error", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", failing_open)
    with pytest.raises(StorageError) as err:
        second.etag  # noqa: B018
    assert "'k2'" in err.value.message and "Input/output error" in err.value.message
    assert str(store.root) not in str(err.value)


def test_a_bucket_folder_swapped_for_a_link_after_first_use_is_refused(store, tmp_path) -> None:
    """The bucket's real path is resolved once: a bucket folder later replaced by a link
    to another folder does not lead reads or writes there."""
    from ephemera.errors import InvalidKeyError

    store.put("bkt", "k", b"mine")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "k").write_bytes(b"theirs")
    (store.root / "bkt").rename(tmp_path / "old-bucket")
    (store.root / "bkt").symlink_to(elsewhere)
    with pytest.raises(InvalidKeyError, match="symbolic link"):
        store.get("bkt", "k")
    with pytest.raises(InvalidKeyError, match="symbolic link"):
        store.put("bkt", "k", b"overwrite")
    assert (elsewhere / "k").read_bytes() == b"theirs"
