"""A run's logs in the state bucket: the chunks VMs ship and the engine's job logs.

A chunk is an immutable object (a new key per upload, see
:func:`ephemera.layout.log_chunk_key`) of text lines ``<ISO time>\\t<text>``; its key
says the source (``boot``, ``agent``, ``workload`` from each VM, ``engine`` for a
Terraform or Schematics job), the stream (the worker index, or the activity id) and
a chunk name that sorts in time. Logs outlive the VMs, since they live beside the run
record. Whoever writes a chunk scrubs it first; readers get :class:`LogLine` records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from ephemera import layout
from ephemera.errors import NoSuchBucketError, NoSuchKeyError
from ephemera.secrets import Scrubber
from ephemera.storage.base import Storage

SOURCES = ("action", "engine", "boot", "agent", "workload")  # what `ephemera logs --source` accepts
VM_SOURCES = ("boot", "agent", "workload")
# a leading ISO 8601 time, as Ephemera and its activation records write them
LEADING_TIME_RE = re.compile(r"^(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?)\s+")


@dataclass(frozen=True)
class LogLine:
    at: str  # ISO 8601 UTC time of the line
    source: str  # one of SOURCES
    text: str  # the line, scrubbed
    worker: int | None = None  # the VM it came from (None for action and engine lines)
    stream: str = ""  # the engine activity or activation id, or the worker index

    def sort_key(self) -> tuple:
        return (self.at, SOURCES.index(self.source) if self.source in SOURCES else 9)


def split_time(line: str) -> tuple[str | None, str]:
    """(the line's leading ISO time or None, the rest)."""
    match = LEADING_TIME_RE.match(line)
    if not match:
        return None, line
    return match.group(1).replace(" ", "T", 1).replace("Z", "+00:00"), line[match.end() :]


def encode_chunk(lines: Iterable[tuple[str, str]]) -> bytes:
    """Lines ``(at, text)`` as a chunk's bytes (text kept on one line)."""
    return "".join(f"{at}\t{text.replace(chr(10), ' ')}\n" for at, text in lines).encode()


def parse_chunk(data: bytes) -> list[tuple[str, str]]:
    out = []
    # entries end at "\n" only: splitlines() would also end one at a CR, form feed, NEL or U+2028
    # inside a line's text, dropping its rest or taking it for an entry with a time of its choosing
    for line in data.decode(errors="replace").split("\n"):
        at, sep, text = line.partition("\t")
        if sep:
            out.append((at, text))
    return out


def write_engine_log(
    storage: Storage, bucket: str, run_id: str, activity_id: str, started_at: str, text: str, scrubber: Scrubber
) -> None:
    """Store an engine job's log as one chunk; lines without a time of their own take the
    previous line's (the job's start for the first)."""
    lines, at = [], started_at
    for raw in scrubber.scrub(text).splitlines():
        found, rest = split_time(raw)
        at = found or at
        lines.append((at, rest if found else raw))
    storage.put(bucket, layout.log_chunk_key(run_id, "engine", activity_id, "0"), encode_chunk(lines))


def chunk_keys(storage: Storage, bucket: str, run_id: str) -> list[str]:
    try:
        return [o.key for o in storage.list(bucket, layout.log_prefix(run_id)) if o.key.endswith(".log")]
    except NoSuchBucketError:
        return []


def read_chunk(storage: Storage, bucket: str, key: str) -> list[LogLine]:
    """The lines of one chunk ([] if it is gone)."""
    source, stream = key.split("/")[-3:-1]
    worker = int(stream) if source in VM_SOURCES and stream.isdigit() else None
    try:
        data = storage.get(bucket, key)
    except NoSuchKeyError:
        return []
    return [LogLine(at, source, text, worker, stream) for at, text in parse_chunk(data)]


def read_logs(storage: Storage, bucket: str, run_id: str, skip: set[str] | None = None) -> tuple[list[LogLine], list[str]]:
    """The stored lines of a run, in time order, from the chunks not in ``skip``; and the keys read."""
    keys = [k for k in chunk_keys(storage, bucket, run_id) if not skip or k not in skip]
    lines = [line for key in keys for line in read_chunk(storage, bucket, key)]
    return sorted(lines, key=LogLine.sort_key), keys
