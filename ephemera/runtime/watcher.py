"""Bucket-write triggers of the local runtime.

Two ways to see writes, one event shape. ``emit(trigger, params)`` gets
``{"ephemera_kind": "object_write", "ephemera_trigger", "bucket", "key", "etag",
"size", "ephemera_time"}`` (read by :func:`ephemera.events.formats.parse_local_write`) for each
write whose key starts with the trigger's ``prefix`` and ends with any of its
``suffix`` list (an empty list matches every key).

- :class:`FilesystemWatcher`, for the localhost backend: real filesystem events
  (watchdog) on ``<root>/<bucket>/<key>`` files, watching each trigger's bucket folder. The backend writes objects
  atomically, by moving a temp file in from ``<root>/.tmp`` (reported at once) or by
  ``link()``. A file created in place is reported once complete
  (:mod:`ephemera.runtime.settle`): at its writer's close, or once quiet; never
  while it is still empty or half written. watchdog may report one write more than once (a new folder is
  walked, and the real events of the same files follow), so an event only means
  "look at this path": the object found there is reported if its identity (inode,
  mtime, size) was not reported before. One write is never reported twice; two
  overwrites of one key within the same instant may be reported once, as the newer.
- :class:`PollingWatcher`, for any backend: reports objects that are new or whose
  etag changed, starting from what exists at start-up (or at the first listing that
  succeeds), so objects written before do not fire. After that first listing it never
  lists the whole prefix again: every ``interval`` seconds it lists the keys after
  the newest key seen (``start_after``; keys that sort last, as time-ordered keys do,
  fire on the next poll) and one page (``page`` keys) of a sweep that continues from
  where the previous page ended and wraps around at the end, so writes elsewhere in
  the key order, overwrites and deletions are seen within one round of the prefix
  (one poll while the prefix holds fewer than ``page`` keys).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ephemera.errors import NoSuchBucketError, StorageError
from ephemera.runtime.settle import Settler
from ephemera.storage.base import ObjectInfo, Storage

log = logging.getLogger("ephemera.runtime.watcher")
Emit = Callable[[str, dict], None]
_SEEN_LIMIT = 50_000  # paths remembered for de-duplication


def matches(trigger: dict, key: str) -> bool:
    """Whether a written key is one the trigger watches."""
    if not key.startswith(trigger.get("prefix") or ""):
        return False
    suffixes = trigger.get("suffix") or []
    if isinstance(suffixes, str):
        suffixes = [suffixes]
    return not suffixes or any(key.endswith(s) for s in suffixes)


def write_params(trigger: str, bucket: str, info: ObjectInfo, payload: dict | None = None) -> dict:
    """The event params of one object write: the trigger's ``payload``, under the write's own fields."""
    return {
        **(payload or {}),
        "ephemera_kind": "object_write",
        "ephemera_trigger": trigger,
        "bucket": bucket,
        "key": info.key,
        "etag": info.etag,
        "size": info.size,
        "ephemera_time": info.last_modified.isoformat(),
    }


def _safe_emit(emit: Emit, trigger: str, params: dict) -> None:
    # keys with %r: a key listed from a store that accepts newlines must not forge a log line
    log.info("bucket write %s/%r fires trigger '%s'", params["bucket"], params["key"], trigger)
    try:
        emit(trigger, params)
    except Exception:
        log.exception("trigger '%s': dispatching the write of %r failed", trigger, params["key"])


class _StoppingRace(logging.Filter):
    """Drops watchdog's "queue_events() called when the thread is inactive": a read racing its own stop."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "called when the thread is inactive" not in record.getMessage()


def _reports_closes(observer_class) -> bool:
    """Whether the platform's observer reports a writer's close (inotify does)."""
    return "inotify" in observer_class.__module__.lower()


class FilesystemWatcher:
    """Filesystem events on a localhost storage root, for every object_write trigger."""

    def __init__(self, storage, triggers: list[dict], emit: Emit):
        self.storage = storage  # a LocalhostStorage: has .root and head()
        self.triggers = list(triggers)  # object_write trigger dicts (name, bucket, prefix, suffix)
        self.emit = emit  # callback(trigger name, event params)
        self.root = Path(storage.root)
        self._seen: OrderedDict[tuple, None] = OrderedDict()  # (path, inode, mtime_ns, size) reported
        self._lock = threading.Lock()
        self._observer = None
        self._settler = Settler(self._on_file)  # files created in place wait until complete

    def start(self) -> None:
        """Watch the storage root (recursively); returns once the watches are in place."""
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        watcher = self
        settler = self._settler
        closes = _reports_closes(Observer)

        class _Handler(FileSystemEventHandler):
            def on_created(self, event):  # a writer may still be filling it: wait for its close, or quiet
                if not event.is_directory:
                    settler.hold(os.fsdecode(event.src_path))

            def on_modified(self, event):
                if not event.is_directory:
                    if closes:
                        settler.drop(os.fsdecode(event.src_path))  # a writer has it open: its close reports it
                    else:
                        settler.hold(os.fsdecode(event.src_path))

            def on_closed(self, event):  # a writer closed it: complete
                if not event.is_directory:
                    settler.drop(os.fsdecode(event.src_path))
                    watcher._on_file(event.src_path)

            def on_moved(self, event):
                if not event.is_directory and event.dest_path:
                    settler.drop(os.fsdecode(event.dest_path))
                    watcher._on_file(event.dest_path)

        # watchdog warns when a new folder's watch is registered twice; harmless here
        warnings.filterwarnings("ignore", message="Callback with id", category=RuntimeWarning)
        # ... and logs an error when its emitter thread reads once more while being stopped
        inotify_log = logging.getLogger("watchdog.observers.inotify")
        if not any(isinstance(f, _StoppingRace) for f in inotify_log.filters):
            inotify_log.addFilter(_StoppingRace())
        self._observer = Observer()
        self._observer.daemon = True
        handler = _Handler()
        # the watched buckets' folders only, never <root>/.tmp: a write moved in from there is
        # then a lone "moved to" (seen as created), not a move pair that inotify may not pair
        # up (a new folder's watch comes late) and that watchdog then holds back 0.5 s
        for bucket in sorted({t["bucket"] for t in self.triggers}):
            folder = self.root / bucket
            folder.mkdir(parents=True, exist_ok=True)
            self._observer.schedule(handler, str(folder), recursive=True)
        self._settler.start()
        self._observer.start()

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(5)
            self._observer = None
        self._settler.stop()

    def _on_file(self, path: str | bytes) -> None:
        try:
            self._handle(os.fsdecode(path))
        except Exception:  # never let one bad event stop the observer thread
            log.exception("cannot handle the filesystem event for %r", path)

    def _handle(self, path: str) -> None:
        try:
            rel = Path(path).relative_to(self.root)
        except ValueError:
            return
        if len(rel.parts) < 2 or rel.parts[0].startswith("."):
            return  # not an object: the temp folder, or a file directly under the root
        bucket, key = rel.parts[0], "/".join(rel.parts[1:])
        wanted = [t for t in self.triggers if t["bucket"] == bucket and matches(t, key)]
        if not wanted:
            return
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return  # deleted or replaced since: the replacement has its own event
        seen_key = (path, st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            if seen_key in self._seen:
                return  # this version of the object was already reported
            self._seen[seen_key] = None
            while len(self._seen) > _SEEN_LIMIT:
                self._seen.popitem(last=False)
        try:
            info = self.storage.head(bucket, key)
        except StorageError as exc:
            log.debug("skipping %s/%r: %s", bucket, key, exc)
            return
        for trig in wanted:
            _safe_emit(self.emit, trig["name"], write_params(trig["name"], bucket, info, trig.get("payload")))


@dataclass
class _Watch:
    """What the polling watcher knows of one trigger's prefix."""

    seen: dict[str, str] = field(default_factory=dict)  # key -> etag last seen (matching keys)
    tail: str = ""  # the greatest key listed so far (any key under the prefix)
    cursor: str = ""  # where the sweep continues ("" : from the start)


class PollingWatcher:
    """Polls each trigger's bucket and prefix every ``interval`` seconds, a page at a time."""

    def __init__(self, storage: Storage, triggers: list[dict], emit: Emit, interval: float = 2.0, page: int = 1000):
        self.storage = storage  # any backend
        self.triggers = list(triggers)  # object_write trigger dicts
        self.emit = emit  # callback(trigger name, event params)
        self.interval = float(interval)  # seconds between polls
        self.page = max(1, int(page))  # keys per listing request (S3 answers 1,000 at most)
        self._watch: dict[str, _Watch] = {}  # trigger -> its state, once it has a baseline
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _list(self, trig: dict, start_after: str, limit: int | None) -> list[ObjectInfo] | None:
        """Up to ``limit`` objects under the trigger's prefix after ``start_after``;
        [] for a missing bucket, None (logged) when the listing fails."""
        try:
            listing = self.storage.list(trig["bucket"], trig.get("prefix") or "", start_after=start_after)
            return list(itertools.islice(listing, limit))
        except NoSuchBucketError:
            return []
        except Exception as exc:  # a flaky endpoint: try again next round
            log.warning(
                "trigger '%s': listing bucket '%s' failed (%s); retrying in %g s",
                trig["name"],
                trig["bucket"],
                exc,
                self.interval,
            )
            return None

    def start(self) -> None:
        """Remember what exists now (it will not fire), then poll on a thread. A trigger
        whose first listing fails has no baseline yet: the next successful listing
        becomes its baseline, and fires nothing."""
        for trig in self.triggers:
            self._take_baseline(trig)
        self._thread = threading.Thread(target=self._run, name="ephemera-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def poll_once(self) -> int:
        """One round over every trigger; returns how many writes it reported."""
        count = 0
        for trig in self.triggers:
            if self._stop.is_set():
                break
            watch = self._watch.get(trig["name"])
            if watch is None:  # the start-up listing failed: baseline now
                self._take_baseline(trig)
                continue
            whole = watch.cursor == ""  # this sweep page starts at the beginning of the prefix
            swept, complete = self._sweep(trig, watch)
            count += swept
            if not (whole and complete):  # the prefix is longer than a page: new keys at the end now
                count += self._poll_tail(trig, watch)
        return count

    def _fire(self, trig: dict, watch: _Watch, info: ObjectInfo) -> int:
        if not matches(trig, info.key) or watch.seen.get(info.key) == info.etag:
            return 0
        watch.seen[info.key] = info.etag
        _safe_emit(self.emit, trig["name"], write_params(trig["name"], trig["bucket"], info, trig.get("payload")))
        return 1

    def _poll_tail(self, trig: dict, watch: _Watch) -> int:
        """Keys after the greatest one seen: every new one that sorts last."""
        count = 0
        while True:
            batch = self._list(trig, watch.tail, self.page)
            if not batch:
                return count
            for info in batch:
                count += self._fire(trig, watch, info)
            watch.tail = batch[-1].key
            if len(batch) < self.page:
                return count

    def _sweep(self, trig: dict, watch: _Watch) -> tuple[int, bool]:
        """One page of the round over the whole prefix: new keys before the tail,
        changed etags, deletions (a re-created key fires again). ``(fired, the page
        reached the end of the prefix)``."""
        start = watch.cursor
        batch = self._list(trig, start, self.page)
        if batch is None:
            return 0, False
        count = sum(self._fire(trig, watch, info) for info in batch)
        end = batch[-1].key if len(batch) == self.page else None  # None: the round reached the end
        listed = {info.key for info in batch}
        gone = [k for k in watch.seen if k > start and (end is None or k <= end) and k not in listed]
        for key in gone:
            del watch.seen[key]
        if batch and batch[-1].key > watch.tail:
            watch.tail = batch[-1].key
        watch.cursor = end or ""
        return count, end is None

    def _take_baseline(self, trig: dict) -> None:
        """What exists now, remembered so it does not fire; a failed listing leaves the
        trigger without a baseline."""
        listing = self._list(trig, "", None)
        if listing is None:
            log.warning(
                "trigger '%s': no baseline of bucket '%s' yet; objects already there will not fire once it is listed",
                trig["name"],
                trig["bucket"],
            )
            return
        self._watch[trig["name"]] = _Watch(
            seen={o.key: o.etag for o in listing if matches(trig, o.key)}, tail=listing[-1].key if listing else ""
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll_once()
            except Exception:
                log.exception("polling for bucket writes failed; retrying in %g s", self.interval)
