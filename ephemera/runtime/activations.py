"""Activation records of the local runtime, as OpenWhisk keeps them.

Every action invocation leaves one JSON record at
``ephemera/activations/<activationId>.json`` in the state bucket (see
:func:`ephemera.layout.activation_key`): which trigger and rule fired it, the action,
start and end times, duration, the result, the log lines and a status
(``success | application_error | developer_error | timeout``, or ``interrupted``).
Activation ids are 32 hex characters that sort by creation time, so a key listing is
already in time order.

While an invocation runs, ``ephemera/activations-started/<activationId>.json`` names it
and the runtime process (host, pid, start time); it is deleted once the record is
stored. A runtime killed meanwhile leaves it behind, and the next runtime's start
completes it (:func:`complete_interrupted`): a record with status ``interrupted``, so
no invocation goes unrecorded.

Secret values of the config are scrubbed from logs, results and event parameters
before a record is built, so no stored record can leak them.
"""

from __future__ import annotations

import os
import secrets as _secrets
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Iterable

from ephemera import layout
from ephemera.errors import NoSuchBucketError, NoSuchKeyError
from ephemera.secrets import Scrubber
from ephemera.storage import get_json, put_json
from ephemera.storage.base import Storage
from ephemera.timeutil import now_utc

STATUSES = ("success", "application_error", "developer_error", "timeout", "interrupted")
INTERRUPTED = "interrupted"  # the runtime died before the invocation ended

_id_lock = threading.Lock()
_last_ns = 0


def new_activation_id() -> str:
    """32 hex characters: 16 of the creation time in ns (strictly increasing in this
    process), then 16 random ones. Lexical order is time order."""
    global _last_ns
    with _id_lock:
        now = max(time.time_ns(), _last_ns + 1)
        _last_ns = now
    return f"{now:016x}{_secrets.token_hex(8)}"


@dataclass
class Activation:
    """One invocation of an action by the local runtime."""

    activationId: str  # 32 hex chars, sortable by time
    trigger: str  # the trigger that fired (or "manual")
    rule: str  # the rule that bound the trigger to the action
    action: str  # the action name: apply | destroy | reap | status
    target: str  # the "module:function" that ran
    start: str  # ISO 8601 UTC time the process was started
    end: str  # ISO 8601 UTC time the invocation ended
    duration_ms: int  # end - start in milliseconds
    status: str  # success | application_error | developer_error | timeout
    result: dict  # the action's result, or {"error": {...}} from the runtime
    logs: list[str] = field(default_factory=list)  # "<time> stdout|stderr: <line>" lines
    event: dict = field(default_factory=dict)  # the event parameters (never the config)
    exit_code: int | None = None  # the action process's exit code (None if killed)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Activation":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    @property
    def ok(self) -> bool:
        return self.status == "success"

    # dict-style reads, for callers that treat records as the stored JSON
    def __getitem__(self, name: str) -> Any:
        if name not in self.__dataclass_fields__:
            raise KeyError(name)
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name) if name in self.__dataclass_fields__ else default


def store_activation(storage: Storage, bucket: str, activation: Activation, secret_values: Iterable[str] = ()) -> Activation:
    """Scrub and store one record; returns the scrubbed record that was stored."""
    clean = Activation.from_dict(Scrubber(secret_values).scrub_obj(activation.to_dict()))
    put_json(storage, bucket, layout.activation_key(clean.activationId), clean.to_dict())
    return clean


def get_activation(storage: Storage, bucket: str, activation_id: str) -> Activation:
    """One record by id, or a unique prefix of an id; raises NoSuchKeyError."""
    try:
        return Activation.from_dict(get_json(storage, bucket, layout.activation_key(activation_id)))
    except NoSuchKeyError:
        matches = [k for k in _keys(storage, bucket) if k[len(layout.ACTIVATIONS) :].startswith(activation_id)]
        if len(matches) != 1:
            raise
        return Activation.from_dict(get_json(storage, bucket, matches[0]))


def _keys(storage: Storage, bucket: str) -> list[str]:
    """Keys of every record; a missing state bucket raises NoSuchBucketError (a misconfiguration)."""
    return [o.key for o in storage.list(bucket, layout.ACTIVATIONS) if o.key.endswith(".json")]


def list_activations(storage: Storage, bucket: str, limit: int | None = 20) -> list[Activation]:
    """The newest ``limit`` records (all if None), newest first."""
    keys = sorted(_keys(storage, bucket), reverse=True)
    if limit is not None:
        keys = keys[: max(0, limit)]
    return _read(storage, bucket, keys)


def new_activations(storage: Storage, bucket: str, seen: set[str]) -> list[Activation]:
    """The records whose keys are not in ``seen`` (which it extends), oldest first. A
    record is written once, when its invocation has ended, so a key seen is final: a
    follower reads each record once, not every record on every poll."""
    keys = sorted(set(_keys(storage, bucket)) - seen)
    seen.update(keys)
    return _read(storage, bucket, keys)


def _read(storage: Storage, bucket: str, keys: list[str]) -> list[Activation]:
    records = []
    for key in keys:
        try:
            records.append(Activation.from_dict(get_json(storage, bucket, key)))
        except NoSuchKeyError:  # deleted since the listing
            continue
    return records


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def runtime_identity() -> dict:
    """This runtime process, as the next runtime can tell whether it is still alive."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _start_time(os.getpid())}


def _is_gone(runtime: dict) -> bool:
    if runtime.get("host") != socket.gethostname():
        return False  # another machine's runtime: it cannot be checked from here
    return _start_time(int(runtime.get("pid") or 0)) != runtime.get("started")


def mark_started(storage: Storage, bucket: str, activation: Activation, secret_values: Iterable[str] = ()) -> None:
    """Note an invocation under way (``activation`` holds what is known at its start)."""
    clean = Scrubber(secret_values).scrub_obj(activation.to_dict())
    put_json(storage, bucket, layout.activation_started_key(activation.activationId), {**clean, "runtime": runtime_identity()})


def mark_done(storage: Storage, bucket: str, activation_id: str) -> None:
    storage.delete(bucket, layout.activation_started_key(activation_id))


def complete_interrupted(storage: Storage, bucket: str, secret_values: Iterable[str] = ()) -> list[Activation]:
    """Store an ``interrupted`` record for every invocation whose runtime died before it ended."""
    try:
        keys = [o.key for o in storage.list(bucket, layout.ACTIVATIONS_STARTED) if o.key.endswith(".json")]
    except NoSuchBucketError:
        return []
    done = []
    for key in keys:
        try:
            data = get_json(storage, bucket, key)
        except NoSuchKeyError:
            continue
        if not isinstance(data, dict) or not _is_gone(data.get("runtime") or {}):
            continue
        record = Activation.from_dict(data)
        now = now_utc()
        try:
            started = datetime.fromisoformat(record.start)
        except (TypeError, ValueError):
            started = now
        pid = (data.get("runtime") or {}).get("pid")
        record.status, record.end = INTERRUPTED, now.isoformat(timespec="milliseconds")
        record.duration_ms = max(0, int((now - started).total_seconds() * 1000))
        record.result = {
            "error": {
                "code": "ACTION_INTERRUPTED",
                "retryable": False,
                "message": f"the runtime (pid {pid}) stopped before the action ended; "
                "the reaper finishes or destroys any run it left open",
            }
        }
        done.append(store_activation(storage, bucket, record, secret_values))
        storage.delete(bucket, key)
    return done
