"""Activation records of the local runtime, as OpenWhisk keeps them.

Every action invocation leaves one JSON record at
``ephemera/activations/<activationId>.json`` in the state bucket (see
:func:`ephemera.layout.activation_key`): which trigger and rule fired it, the action,
start and end times, duration, the result, the log lines and a status
(``success | application_error | developer_error | timeout``). Activation ids are 32
hex characters that sort by creation time, so a key listing is already in time order.

Secret values of the config are scrubbed from logs, results and event parameters
before a record is built, so no stored record can leak them.
"""

from __future__ import annotations

import secrets as _secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

from ephemera import layout
from ephemera.errors import NoSuchBucketError, NoSuchKeyError
from ephemera.storage import get_json, put_json
from ephemera.secrets import MASK, Scrubber  # noqa: F401  (MASK is re-exported)
from ephemera.storage.base import Storage

STATUSES = ("success", "application_error", "developer_error", "timeout")

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


def activation_time(activation_id: str) -> datetime | None:
    """The creation time encoded in an activation id, or None if it is not one."""
    try:
        return datetime.fromtimestamp(int(activation_id[:16], 16) / 1e9, timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None


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


def scrub(value: Any, secret_values: Iterable[str]) -> Any:
    """A copy of ``value`` (JSON-like) with every secret masked, in strings and mapping
    keys, at any depth."""
    return Scrubber(secret_values).scrub_obj(value)


def store_activation(storage: Storage, bucket: str, activation: Activation, secret_values: Iterable[str] = ()) -> Activation:
    """Scrub and store one record; returns the scrubbed record that was stored."""
    clean = Activation.from_dict(scrub(activation.to_dict(), list(secret_values)))
    put_json(storage, bucket, layout.activation_key(clean.activationId), clean.to_dict())
    return clean


def get_activation(storage: Storage, bucket: str, activation_id: str) -> Activation:
    """One record by id, or a unique prefix of an id; raises NoSuchKeyError."""
    try:
        return Activation.from_dict(get_json(storage, bucket, layout.activation_key(activation_id)))
    except NoSuchKeyError:
        matches = [k for k in _keys(storage, bucket) if k[len(layout.ACTIVATIONS):].startswith(activation_id)]
        if len(matches) != 1:
            raise
        return Activation.from_dict(get_json(storage, bucket, matches[0]))


def _keys(storage: Storage, bucket: str) -> list[str]:
    try:
        return [o.key for o in storage.list(bucket, layout.ACTIVATIONS) if o.key.endswith(".json")]
    except NoSuchBucketError:
        return []


def list_activations(storage: Storage, bucket: str, limit: int | None = 20) -> list[Activation]:
    """The newest ``limit`` records (all if None), newest first."""
    keys = sorted(_keys(storage, bucket), reverse=True)
    if limit is not None:
        keys = keys[: max(0, limit)]
    records = []
    for key in keys:
        try:
            records.append(Activation.from_dict(get_json(storage, bucket, key)))
        except NoSuchKeyError:  # deleted since the listing
            continue
    return records


def _short_time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError):
        return iso or "-"


def result_summary(activation: Activation, width: int = 48) -> str:
    """One line saying how the invocation ended."""
    result = activation.result or {}
    err = result.get("error") if isinstance(result, dict) else None
    if isinstance(err, dict):
        text = f"{err.get('code', 'ERROR')}: {err.get('message', '')}"
    elif err:
        text = f"error: {err}"
    else:
        parts = [f"{k}={result[k]}" for k in ("run_id", "state", "ignored", "reason") if k in result]
        text = " ".join(parts) or ("ok" if result.get("ok") else str(result))
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def format_table(activations: list[Activation]) -> str:
    """A plain-text table, one activation per line, newest first as given."""
    if not activations:
        return "no activations"
    header = ("ACTIVATION ID", "START (UTC)", "TRIGGER", "RULE", "ACTION", "STATUS", "DURATION", "RESULT")
    rows = [
        (
            a.activationId,
            _short_time(a.start),
            a.trigger,
            a.rule,
            a.action,
            a.status,
            f"{a.duration_ms / 1000:.2f}s",
            result_summary(a),
        )
        for a in activations
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def format_activation(activation: Activation) -> str:
    """One activation in full: fields, result and logs."""
    import json

    lines = [
        f"activation  {activation.activationId}",
        f"trigger     {activation.trigger}",
        f"rule        {activation.rule}",
        f"action      {activation.action} ({activation.target})",
        f"status      {activation.status}" + (f" (exit code {activation.exit_code})" if activation.exit_code not in (None, 0) else ""),
        f"start       {activation.start}",
        f"end         {activation.end}",
        f"duration    {activation.duration_ms} ms",
        "event       " + json.dumps(activation.event, sort_keys=True, default=str),
        "result",
        *("  " + line for line in json.dumps(activation.result, indent=2, sort_keys=True, default=str).splitlines()),
        f"logs ({len(activation.logs)} lines)",
        *("  " + line for line in activation.logs),
    ]
    return "\n".join(lines)
