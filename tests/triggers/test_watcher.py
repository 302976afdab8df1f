"""Bucket-write triggers: filesystem events on localhost storage and the polling
watcher, each firing exactly once per matching write and never for other keys."""

from __future__ import annotations

import hashlib
import threading

import pytest

from ephemera.assembly import load_config
from ephemera.events.formats import parse_event
from ephemera.runtime.watcher import FilesystemWatcher, PollingWatcher, matches

WAIT = 20


class Emits:
    def __init__(self):
        self.items: list[tuple[str, dict]] = []
        self._cond = threading.Condition()

    def __call__(self, trigger, params):
        with self._cond:
            self.items.append((trigger, params))
            self._cond.notify_all()

    def wait_for_key(self, trigger: str, key: str) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: any(t == trigger and p["key"] == key for t, p in self.items), timeout=WAIT)

    def keys(self, trigger: str) -> list[str]:
        return [p["key"] for t, p in self.items if t == trigger]


def _triggers(tmp_path):
    config = load_config(
        {
            "home": str(tmp_path / "home"),
            "triggers": [
                {
                    "name": "markers",
                    "kind": "object_write",
                    "bucket": "data",
                    "prefix": "outputs/",
                    "suffix": ["_SUCCESS.json", "_FAILURE.json"],
                },
                {"name": "everything", "kind": "object_write", "bucket": "data"},
            ],
            "rules": [{"trigger": "markers", "action": "destroy"}, {"trigger": "everything", "action": "status"}],
        }
    )
    return [t.to_dict() for t in config.triggers]


def test_matches_prefix_and_any_suffix():
    trig = {"prefix": "outputs/", "suffix": ["_SUCCESS.json", "_FAILURE.json"]}
    assert matches(trig, "outputs/r1/_SUCCESS.json") and matches(trig, "outputs/r1/_FAILURE.json")
    assert not matches(trig, "outputs/r1/metrics.json")
    assert not matches(trig, "other/r1/_SUCCESS.json")
    assert matches({"prefix": "", "suffix": []}, "anything/at/all")


def _write_everything(storage):
    """Matching and non-matching writes, in new and existing folders; returns the
    keys the marker trigger must see."""
    storage.put("data", "outputs/r1/metrics.json", b"{}")  # wrong suffix
    storage.put("data", "outputs/r1/_SUCCESS.json", b'{"ok": 1}')  # match (moved in)
    assert storage.put_if_absent("data", "outputs/r2/_FAILURE.json", b'{"ok": 0}')  # match (link)
    storage.put("data", "other/r3/_SUCCESS.json", b"{}")  # wrong prefix
    storage.put("elsewhere", "outputs/r4/_SUCCESS.json", b"{}")  # other bucket
    assert not storage.put_if_absent("data", "outputs/r2/_FAILURE.json", b"{}")  # no write happened
    storage.put("data", "outputs/deep/a/b/c/_SUCCESS.json", b"x")  # match, in new nested folders
    return ["outputs/r1/_SUCCESS.json", "outputs/r2/_FAILURE.json", "outputs/deep/a/b/c/_SUCCESS.json"]


def test_filesystem_watcher_fires_once_per_matching_write(storage, tmp_path):
    emits = Emits()
    storage.put("data", "outputs/old/_SUCCESS.json", b"old")  # before start: never fires
    watcher = FilesystemWatcher(storage, _triggers(tmp_path), emits)
    watcher.start()
    try:
        expected = _write_everything(storage)
        storage.put("data", "zz-sentinel-1", b"end")  # events arrive in order: this one is last
        assert emits.wait_for_key("everything", "zz-sentinel-1")
        storage.delete("data", "outputs/r1/metrics.json")  # deletions never fire
        storage.put("data", "outputs/r1/_SUCCESS.json", b'{"ok": 2}')  # a second write of r1 fires again
        storage.put("data", "zz-sentinel-2", b"end")
        assert emits.wait_for_key("everything", "zz-sentinel-2")
    finally:
        watcher.stop()
    assert sorted(emits.keys("markers")) == sorted(expected + ["outputs/r1/_SUCCESS.json"])
    assert emits.keys("markers")[-1] == "outputs/r1/_SUCCESS.json"
    assert sorted(emits.keys("everything")) == sorted(
        emits.keys("markers") + ["outputs/r1/metrics.json", "other/r3/_SUCCESS.json", "zz-sentinel-1", "zz-sentinel-2"]
    )
    by_key = {}
    for t, p in emits.items:
        if t == "markers":
            by_key.setdefault(p["key"], []).append(p)
    first, second = by_key["outputs/r1/_SUCCESS.json"]
    assert first["ephemera_kind"] == "object_write" and first["ephemera_trigger"] == "markers"
    assert first["bucket"] == "data" and first["size"] == 9
    assert first["etag"] == hashlib.md5(b'{"ok": 1}').hexdigest()
    assert second["etag"] == hashlib.md5(b'{"ok": 2}').hexdigest()
    event = parse_event(second)
    assert event.kind == "object_write" and event.bucket == "data" and event.key == "outputs/r1/_SUCCESS.json"
    assert event.trigger == "markers" and event.size == 9 and event.time is not None
    deep = by_key["outputs/deep/a/b/c/_SUCCESS.json"][0]
    assert deep["etag"] == hashlib.md5(b"x").hexdigest() and deep["size"] == 1


def test_polling_watcher_on_localhost_storage(storage, tmp_path):
    emits = Emits()
    storage.put("data", "outputs/old/_SUCCESS.json", b"old")  # exists at start: never fires
    watcher = PollingWatcher(storage, _triggers(tmp_path), emits, interval=3600)  # rounds driven by hand
    watcher.start()
    try:
        assert watcher.poll_once() == 0
        storage.put("data", "outputs/r1/_SUCCESS.json", b"one")
        storage.put("data", "outputs/r1/metrics.json", b"{}")
        storage.put("data", "other/r1/_SUCCESS.json", b"{}")
        watcher.poll_once()
        assert emits.keys("markers") == ["outputs/r1/_SUCCESS.json"]
        watcher.poll_once()  # nothing new: nothing fires
        assert emits.keys("markers") == ["outputs/r1/_SUCCESS.json"]
        storage.put("data", "outputs/r1/_SUCCESS.json", b"two")  # changed etag: fires again
        storage.put("data", "outputs/old/_SUCCESS.json", b"old")  # same content: not a change
        watcher.poll_once()
        assert emits.keys("markers") == ["outputs/r1/_SUCCESS.json"] * 2
        params = [p for t, p in emits.items if t == "markers"][-1]
        assert params["etag"] == hashlib.md5(b"two").hexdigest() and params["size"] == 3
        assert parse_event(params).key == "outputs/r1/_SUCCESS.json"
    finally:
        watcher.stop()
    assert sorted(emits.keys("everything")) == [
        "other/r1/_SUCCESS.json",
        "outputs/r1/_SUCCESS.json",
        "outputs/r1/_SUCCESS.json",
        "outputs/r1/metrics.json",
    ]


def test_polling_watcher_thread_sees_a_write_in_a_new_bucket(storage, tmp_path):
    emits = Emits()
    watcher = PollingWatcher(storage, _triggers(tmp_path), emits, interval=0.1)
    watcher.start()  # bucket 'data' does not exist yet
    try:
        storage.put("data", "outputs/r9/_SUCCESS.json", b"{}")
        assert emits.wait_for_key("markers", "outputs/r9/_SUCCESS.json")
    finally:
        watcher.stop()
    assert emits.keys("markers") == ["outputs/r9/_SUCCESS.json"]


def test_polling_watcher_whose_first_listing_fails_does_not_fire_what_existed(storage, tmp_path):
    from ephemera.errors import StorageError

    class FlakyStorage:
        """The first listing fails (a flaky endpoint at start-up), later ones work."""

        def __init__(self, inner):
            self.inner, self.failures = inner, 1

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def list(self, bucket, prefix="", start_after=""):
            if self.failures:
                self.failures -= 1
                raise StorageError("listing failed: connection reset", retryable=True)
            return self.inner.list(bucket, prefix, start_after=start_after)

    emits = Emits()
    storage.put("data", "outputs/old/_SUCCESS.json", b"old")  # existed before start-up
    watcher = PollingWatcher(FlakyStorage(storage), _triggers(tmp_path)[:1], emits, interval=3600)
    watcher.start()  # the baseline listing fails
    try:
        assert watcher.poll_once() == 0, "a pre-existing object fired"
        storage.put("data", "outputs/new/_SUCCESS.json", b"new")
        assert watcher.poll_once() == 1
    finally:
        watcher.stop()
    assert emits.keys("markers") == ["outputs/new/_SUCCESS.json"]


class CountingStorage:
    """Counts the objects each listing hands out (what a poll costs)."""

    def __init__(self, inner):
        self.inner, self.listed = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def list(self, bucket, prefix="", start_after=""):
        self.listed.append(0)
        for info in self.inner.list(bucket, prefix, start_after=start_after):
            self.listed[-1] += 1
            yield info


def _s3_storage(s3_endpoint, bucket):
    from ephemera.assembly import get_storage

    store = get_storage(
        {
            "storage": {"backend": "aws_s3", "bucket": bucket},
            "aws_s3": {
                "endpoint": s3_endpoint,
                "region": "us-east-1",
                "access_key_id": "WATCHKEYID01",
                "secret_access_key": "watch-secret-3f9a",
            },
        }
    )
    store.create_bucket(bucket)
    return store


@pytest.mark.parametrize("backend", ["localhost", "aws_s3"])
def test_polling_watcher_lists_a_page_per_poll_not_the_whole_prefix(backend, storage, request, unique_bucket):
    """S3's ListObjectsV2 returns keys in order and ``StartAfter`` starts the listing after
    a key (the same on localhost storage here): after its baseline the watcher lists,
    per poll, the keys after the newest one seen and one page of a sweep round; a key
    written at the end fires on the next poll, one written elsewhere, an overwrite and
    a re-created key within one round."""
    inner = storage if backend == "localhost" else _s3_storage(request.getfixturevalue("s3_endpoint"), unique_bucket)
    bucket = "data" if backend == "localhost" else unique_bucket
    for i in range(45):
        inner.put(bucket, f"outputs/k-{i:03d}/_SUCCESS.json", f"{i}".encode())
    counted = CountingStorage(inner)
    emits = Emits()
    trig = {"name": "markers", "kind": "object_write", "bucket": bucket, "prefix": "outputs/", "suffix": ["_SUCCESS.json"]}
    watcher = PollingWatcher(counted, [trig], emits, interval=3600, page=10)
    watcher.start()
    try:
        assert counted.listed == [45]  # the baseline: once
        inner.put(bucket, "outputs/z-last/_SUCCESS.json", b"new")  # sorts last
        watcher.poll_once()
        assert emits.keys("markers") == ["outputs/z-last/_SUCCESS.json"]
        inner.put(bucket, "outputs/k-010b/_SUCCESS.json", b"middle")
        inner.put(bucket, "outputs/k-003/_SUCCESS.json", b"changed")
        inner.delete(bucket, "outputs/k-040/_SUCCESS.json")
        rounds = 0
        while len(emits.keys("markers")) < 3 and rounds < 6:
            watcher.poll_once()
            rounds += 1
        assert sorted(emits.keys("markers")[1:]) == ["outputs/k-003/_SUCCESS.json", "outputs/k-010b/_SUCCESS.json"]
        for _ in range(6):  # a full round notices the deletion
            watcher.poll_once()
        inner.put(bucket, "outputs/k-040/_SUCCESS.json", b"40")  # re-created with the same content
        for _ in range(6):
            watcher.poll_once()
        assert emits.keys("markers")[-1] == "outputs/k-040/_SUCCESS.json" and len(emits.keys("markers")) == 4
        assert max(counted.listed[1:]) <= 10  # no poll listed more than a page
    finally:
        watcher.stop()


def test_an_object_write_trigger_adds_its_payload_under_the_writes_own_fields(storage, tmp_path):
    """F5: ``triggers[].payload`` reaches an object-write trigger's action, as it does an
    alarm's; a payload key named like an event field never replaces the write's own."""
    config = load_config(
        {
            "home": str(tmp_path / "home"),
            "triggers": [
                {
                    "name": "inbox",
                    "kind": "object_write",
                    "bucket": "data",
                    "prefix": "in/",
                    "payload": {"params": {"mode": "fast"}, "key": "forged", "ephemera_kind": "alarm"},
                }
            ],
            "rules": [{"trigger": "inbox", "action": "apply"}],
        }
    )
    for watcher_class in (FilesystemWatcher, PollingWatcher):
        emits = Emits()
        watcher = (
            PollingWatcher(storage, [t.to_dict() for t in config.triggers], emits, interval=3600)
            if watcher_class is PollingWatcher
            else FilesystemWatcher(storage, [t.to_dict() for t in config.triggers], emits)
        )
        watcher.start()
        try:
            storage.put("data", f"in/{watcher_class.__name__}.csv", b"a,b\n")
            if isinstance(watcher, PollingWatcher):
                watcher.poll_once()
            assert emits.wait_for_key("inbox", f"in/{watcher_class.__name__}.csv")
        finally:
            watcher.stop()
        [(trigger, params)] = emits.items
        assert params["params"] == {"mode": "fast"} and params["key"] == f"in/{watcher_class.__name__}.csv"
        assert params["ephemera_kind"] == "object_write" and params["etag"] == hashlib.md5(b"a,b\n").hexdigest()


def test_a_file_written_in_place_fires_once_complete(storage, tmp_path):
    """Seen once: a trigger fired with the MD5 of an empty file. A file created in the
    bucket's folder by another program (``cp``, an editor, a writer that takes its time)
    is seen when it is created, empty, before its content is written. The watcher fires
    once per complete object: when the writer closes it, with its final etag and size;
    a rewrite in place (no new file) fires again."""
    import time

    emits = Emits()
    watcher = FilesystemWatcher(storage, _triggers(tmp_path), emits)
    watcher.start()
    path = tmp_path / "storage" / "data" / "inbox" / "slow.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    content = b"row\n" * 1000
    try:
        with open(path, "wb") as f:
            for i in range(0, len(content), 1000):
                f.write(content[i : i + 1000])
                f.flush()
                time.sleep(0.15)  # longer than the watcher's settle time: each chunk is a new version on disk
        path.with_name("empty").write_bytes(b"")  # an empty object is an object too
        storage.put("data", "zz-sentinel", b"end")
        assert emits.wait_for_key("everything", "zz-sentinel")
        time.sleep(0.5)  # a late second fire would land now
        path.write_bytes(b"rewritten\n")  # in place: truncated and written again
        storage.put("data", "zz-sentinel-2", b"end")
        assert emits.wait_for_key("everything", "zz-sentinel-2")
        time.sleep(0.5)
    finally:
        watcher.stop()
    fired = [p for t, p in emits.items if t == "everything" and p["key"] == "inbox/slow.csv"]
    assert [(p["etag"], p["size"]) for p in fired] == [
        (hashlib.md5(content).hexdigest(), len(content)),
        (hashlib.md5(b"rewritten\n").hexdigest(), 10),
    ], fired
    empty = [p for t, p in emits.items if t == "everything" and p["key"] == "inbox/empty"]
    assert [(p["etag"], p["size"]) for p in empty] == [(hashlib.md5(b"").hexdigest(), 0)]
