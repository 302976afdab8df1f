"""Shipping a VM's logs to the state bucket, so they outlive the VM.

A :class:`LogShipper` collects lines by source -- files it tails (the bootstrap's
log), log records (a :meth:`LogShipper.handler` on the agent's loggers) and lines
written to it (the workload's output, read from its pipe) -- and every ``interval``
seconds, and once more when stopped, uploads what is new as one chunk per source
(:mod:`ephemera.model.logs`). Every line is stamped (its own leading ISO time, else
the previous line's, else the time it was read) and scrubbed of the config's secrets
before it leaves the VM. A failed upload keeps the lines for the next one, up to
``max_lines`` per source (the oldest are dropped first, and the drop is said).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from ephemera import layout
from ephemera.model.logs import encode_chunk, split_time
from ephemera.secrets import Scrubber
from ephemera.storage.base import Storage
from ephemera.timeutil import iso_of, now_iso

log = logging.getLogger("ephemera.vm.logship")
SHIP_INTERVAL = 3.0  # seconds between uploads
MAX_LINES = 20000  # kept per source while uploads fail


class UTCFormatter(logging.Formatter):
    """Log lines that start with an ISO 8601 UTC time (as every stored time is)."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        return iso_of(record.created)


def log_to_stdout() -> None:
    """A VM process's logging: INFO and up to stdout, each line led by its UTC time."""
    import sys

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(UTCFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])


class _Handler(logging.Handler):
    def __init__(self, shipper: "LogShipper", source: str):
        super().__init__(logging.INFO)
        self.shipper, self.source = shipper, source
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == log.name:  # the shipper's own complaints would feed themselves
            return
        try:
            text = self.format(record)
        except Exception:  # noqa: BLE001 - a malformed record: not worth losing the rest
            return
        for line in text.splitlines() or [""]:
            self.shipper.add(self.source, line, iso_of(record.created))


class LogShipper:
    def __init__(
        self,
        storage: Storage,
        bucket: str,
        run_id: str,
        worker: int,
        scrubber: Scrubber,
        interval: float = SHIP_INTERVAL,
        max_lines: int = MAX_LINES,
    ):
        self.storage, self.bucket, self.run_id, self.worker = storage, bucket, run_id, worker
        self.scrubber, self.interval, self.max_lines = scrubber, interval, max_lines
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # file offsets and chunk numbers are the flusher's
        self._pending: dict[str, list[tuple[str, str]]] = {}
        self._dropped: dict[str, int] = {}
        self._files: dict[str, tuple[Path, int, bytes, str]] = {}  # source -> (path, offset, partial line, last time)
        self._seq = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.chunks = 0  # chunks uploaded

    # what to ship ------------------------------------------------------------------------
    def add(self, source: str, line: str, at: str | None = None) -> None:
        """One line of ``source``; its leading ISO time, else ``at``, else now, stamps it."""
        found, rest = split_time(line.rstrip("\n"))
        stamp = found or at or now_iso()
        with self._lock:
            lines = self._pending.setdefault(source, [])
            lines.append((stamp, rest if found else line.rstrip("\n")))
            if len(lines) > self.max_lines:
                cut = len(lines) - self.max_lines
                del lines[:cut]
                self._dropped[source] = self._dropped.get(source, 0) + cut

    def tail_file(self, source: str, path: str | os.PathLike) -> None:
        """Ship ``path``'s lines as ``source``, from its start (and as it grows)."""
        self._files[source] = (Path(path), 0, b"", "")

    def handler(self, source: str) -> logging.Handler:
        """A logging handler whose records are shipped as ``source``."""
        return _Handler(self, source)

    # shipping ----------------------------------------------------------------------------
    def _read_files(self, final: bool) -> None:
        for source, (path, offset, partial, last) in list(self._files.items()):
            try:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    data = fh.read()
            except OSError:
                continue
            offset += len(data)
            data = partial + data
            lines = data.split(b"\n")
            partial = b"" if final else lines.pop()
            for raw in lines:
                if not raw and final:
                    continue
                text = raw.decode(errors="replace")
                found, _rest = split_time(text)
                last = found or last or now_iso()
                self.add(source, text, last)
            self._files[source] = (path, offset, partial, last)

    def flush(self, final: bool = False) -> int:
        """Upload what is new, one chunk per source; the number of chunks written. One
        flush at a time (the last one at stop may meet a slow periodic one)."""
        with self._flushing:
            return self._flush(final)

    def _flush(self, final: bool) -> int:
        self._read_files(final)
        with self._lock:
            pending, self._pending = self._pending, {}
            dropped, self._dropped = self._dropped, {}
        written = 0
        for source, lines in pending.items():
            if dropped.get(source):
                lines = [(lines[0][0], f"({dropped[source]} earlier lines dropped: uploads failed)")] + lines
            if not lines:
                continue
            self._seq += 1
            chunk = f"{int(time.time() * 1000):013d}-{os.getpid()}-{self._seq:06d}"
            body = encode_chunk((at, self.scrubber.scrub(text)) for at, text in lines)
            try:
                self.storage.put(self.bucket, layout.log_chunk_key(self.run_id, source, self.worker, chunk), body)
            except Exception as exc:  # noqa: BLE001 - keep the lines for the next upload
                log.warning("log upload of %s failed: %s", source, self.scrubber.scrub(f"{type(exc).__name__}: {exc}"))
                with self._lock:
                    self._pending[source] = lines + self._pending.get(source, [])
                continue
            written += 1
        self.chunks += written
        return written

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def start(self) -> "LogShipper":
        self._thread = threading.Thread(target=self._loop, name="log-shipper", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the periodic uploads and upload what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
        self.flush(final=True)
