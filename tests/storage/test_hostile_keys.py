"""Hostile object keys (issue 16, finding 12): every backend refuses keys that cannot be
encoded or that forge or hide text where keys are shown (logs, tables), with an
InvalidKeyError naming the key and the fix; the localhost backend reports a too-long
segment or any OS error as a named error that does not reveal its storage root."""

from __future__ import annotations

import builtins
import errno
import logging

import pytest

from ephemera.errors import InvalidKeyError, StorageError
from ephemera.storage.base import delete_keys
from ephemera.storage.localhost.backend import LocalhostStorage
from ephemera.runtime.watcher import FilesystemWatcher

HOSTILE = {
    "lone surrogate": "outputs/r/\udc80_SUCCESS.json",
    "newline": "outputs/r/_SUCCESS.json\nINFO forged line",
    "carriage return": "outputs/r\r/_SUCCESS.json",
    "tab": "a\tb",
    "escape (ANSI)": "a\x1b[2Jb",
    "DEL": "a\x7fb",
    "C1 next line": "a\x85b",
    "bidi override U+202E": "outputs/r/\u202enosj.SSECCUS_",
    "zero-width space U+200B": "a\u200bb",
    "line separator U+2028": "a\u2028b",
}


@pytest.mark.parametrize("key", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_keys_are_refused_by_every_operation(storage, bucket, key):
    for call in (
        lambda: storage.put(bucket, key, b"x"),
        lambda: storage.put_if_absent(bucket, key, b"x"),
        lambda: storage.get(bucket, key),
        lambda: storage.head(bucket, key),
        lambda: storage.delete(bucket, key),
        lambda: delete_keys(storage, bucket, ["fine", key]),  # the bulk delete refuses before it deletes
        lambda: list(storage.list(bucket, key)),
    ):
        with pytest.raises(InvalidKeyError) as err:
            call()
        message = err.value.message
        assert repr(key)[:30] in message  # named, escaped: the message itself holds no raw control char
        assert "printable characters only" in message
        assert all(c.isprintable() for c in message), message
    assert list(storage.list(bucket)) == []
    storage.put(bucket, "fine", b"kept")
    with pytest.raises(InvalidKeyError):
        delete_keys(storage, bucket, ["fine", key])
    assert storage.get(bucket, "fine") == b"kept"  # nothing of a refused bulk delete went


def test_printable_unicode_keys_still_work(storage, bucket):
    key = "outputs/café-ø/日本/_SUCCESS.json"
    storage.put(bucket, key, b"ok")
    assert storage.get(bucket, key) == b"ok" and [o.key for o in storage.list(bucket, "outputs/")] == [key]


@pytest.fixture
def store(tmp_path):
    s = LocalhostStorage(tmp_path / "secret-root-path")
    s.create_bucket("bkt")
    return s


def test_localhost_segment_over_255_bytes_is_a_named_key_error_without_the_root(store):
    """Reproduces: a 256-byte segment raised a raw OSError naming the storage root."""
    key = "a/" + "x" * 256
    for call in (
        lambda: store.put("bkt", key, b"1"),
        lambda: store.put_if_absent("bkt", key, b"1"),
        lambda: store.get("bkt", key),
        lambda: store.head("bkt", key),
        lambda: store.delete("bkt", key),
    ):
        with pytest.raises(InvalidKeyError) as err:
            call()
        assert "256 bytes" in err.value.message and "shorten" in err.value.message
        assert "secret-root-path" not in str(err.value)
    store.put("bkt", "a/" + "x" * 255, b"ok")  # a segment of exactly 255 bytes is fine
    assert store.get("bkt", "a/" + "x" * 255) == b"ok"


def test_localhost_os_errors_do_not_reveal_the_root(store, monkeypatch):
    store.put("bkt", "k", b"1")
    real_open = builtins.open

    def failing_open(path, *args, **kwargs):
        if "secret-root-path" in str(path):
            raise OSError(errno.EIO, "Input/output error", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", failing_open)
    for call in (lambda: store.get("bkt", "k"), lambda: store.head("bkt", "k")):
        with pytest.raises(StorageError) as err:
            call()
        assert "'k'" in err.value.message and "Input/output error" in err.value.message
        assert "secret-root-path" not in str(err.value) and err.value.__cause__ is None


def test_a_marker_file_with_a_newline_cannot_forge_a_line_of_the_up_log(store, caplog):
    """Reproduces: a marker key with a newline, written straight into the storage folder
    (or listed from a store that accepts it), forged a line in the ``up`` log."""
    emitted = []
    watcher = FilesystemWatcher(
        store, [{"name": "done", "bucket": "bkt", "prefix": "outputs/"}], lambda trigger, params: emitted.append(params)
    )
    folder = store.root / "bkt" / "outputs" / "r"
    folder.mkdir(parents=True)
    hostile = folder / "_SUCCESS.json\nINFO ephemera: run r DESTROYED"
    hostile.write_text("{}")
    with caplog.at_level(logging.DEBUG, logger="ephemera.runtime"):
        watcher._on_file(str(hostile))
    assert emitted == []  # refused before it became an event
    lines = [line for r in caplog.records for line in r.getMessage().splitlines()]
    assert not any(line.startswith("INFO ephemera: run r DESTROYED") for line in lines), lines
