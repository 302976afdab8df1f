"""Run ids, and the identity of the event that asks for a run.

A run id is ``<workspace>-<UTC stamp>-<24 base32 characters>``: readable, sorted by
request time within a workspace, and carrying 120 random bits, so that nobody can
know a run's id before the run is requested and plant objects under its prefixes
(its job queue, record, job spec) for it to use. A caller never chooses one.

Idempotency comes from the event instead: :func:`event_identity` hashes what makes
two deliveries the same event, and :mod:`ephemera.lifecycle.event_claims` claims that
identity once, for one run:

- alarm: workspace + trigger + scheduled time (to the second; the minute of the
  request when the feed gives no fire time, as OpenWhisk alarms fire at most once a
  minute);
- object write: workspace + bucket + key + etag;
- manual: workspace + ``idempotency_key``; without one, no identity (every request
  is a new run).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from datetime import datetime, timezone

from ephemera.errors import ParamError
from ephemera.model.events import Event
from ephemera.timeutil import now_utc

_RUN_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,120}$")
RANDOM_BYTES = 15  # 120 bits: 24 base32 characters, no padding


def _stamp(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y%m%dt%H%M%S")


def validate_run_id(run_id: object, field: str = "run_id") -> str:
    if not isinstance(run_id, str) or not _RUN_ID_RE.match(run_id):
        raise ParamError(field, f"{run_id!r} is not a valid run id", "use 3-121 lowercase letters, digits, '.', '_' or '-'")
    return run_id


_STAMP_RE = re.compile(r"-(\d{8}t\d{6})(?:-|$)")


def stamp_of(run_id: str) -> str | None:
    """The UTC stamp in a run id (``YYYYMMDDtHHMMSS``: a run's request, a sweep's start),
    None for an id without one; stamps sort as their times do (compare with
    :func:`stamp`). A hint for leaving records unread, never a record's time."""
    match = _STAMP_RE.search(run_id)
    return match.group(1) if match else None


def stamp(when: datetime) -> str:
    """``when`` as run ids stamp it."""
    return _stamp(when)


def new_run_id(workspace: str, now: datetime | None = None) -> str:
    """A fresh, unguessable run id for ``workspace`` (validated: at most 63 characters)."""
    random = base64.b32encode(secrets.token_bytes(RANDOM_BYTES)).decode().lower()
    return validate_run_id(f"{workspace}-{_stamp(now or now_utc())}-{random}")


def refuse_chosen_run_id(event: Event) -> None:
    """A request never chooses its run's id (it could take a future run's id)."""
    if "run_id" in event.payload:
        raise ParamError(
            "run_id",
            "a new run's id is chosen by Ephemera, never by the request",
            "drop 'run_id'; pass 'idempotency_key' so that a retried request maps to the same run",
        )


def event_identity(event: Event, workspace: str, now: datetime | None = None) -> str | None:
    """The sha256 (hex) of what makes two deliveries one event; None when every delivery
    is a new request (a manual event without ``idempotency_key``)."""
    if event.kind == "alarm":
        when = event.time or (now or now_utc()).replace(second=0, microsecond=0)
        parts = ["alarm", workspace, event.trigger or "", _stamp(when)]
    elif event.kind == "object_write":
        parts = ["object_write", workspace, event.bucket or "", event.key or "", event.etag or ""]
    else:
        key = event.payload.get("idempotency_key")
        if key is None:
            return None
        if not isinstance(key, str) or not key:
            raise ParamError("idempotency_key", "must be a non-empty string", "pass any string unique to this request")
        parts = ["manual", workspace, key]
    text = json.dumps(parts, ensure_ascii=True)  # unambiguous: no separator can be forged inside a part
    return hashlib.sha256(text.encode()).hexdigest()
