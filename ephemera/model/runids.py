"""Run ids derived from the triggering event, so a redelivered event maps to the
same run and creating it again is a no-op.

- alarm: workspace + scheduled time (to the second; the minute when the feed gives
  no fire time, as OpenWhisk alarms fire at most once a minute);
- object write: workspace + a hash of bucket, key and etag;
- manual: workspace + time + random, unless the caller passes ``run_id`` or
  ``idempotency_key``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timezone

from ephemera.errors import ParamError
from ephemera.model.events import Event
from ephemera.timeutil import now_utc

_RUN_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,120}$")


def _stamp(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y%m%dt%H%M%S")


def validate_run_id(run_id: str, field: str = "run_id") -> str:
    if not isinstance(run_id, str) or not _RUN_ID_RE.match(run_id):
        raise ParamError(field, f"{run_id!r} is not a valid run id", "use 3-121 lowercase letters, digits, '.', '_' or '-'")
    return run_id


def run_id_for(event: Event, workspace: str, now: datetime | None = None) -> str:
    ws = workspace  # validated: lowercase letters, digits, '-' and '_'
    now = now or now_utc()
    if event.kind == "alarm":
        when = event.time or now.replace(second=0, microsecond=0)
        return f"{ws}-{_stamp(when)}"
    if event.kind == "object_write":
        digest = hashlib.sha256(f"{event.bucket}\0{event.key}\0{event.etag or ''}".encode()).hexdigest()[:16]
        return f"{ws}-w{digest}"
    explicit = event.payload.get("run_id")
    if explicit is not None:
        return validate_run_id(explicit)
    key = event.payload.get("idempotency_key")
    if key is not None:
        if not isinstance(key, str) or not key:
            raise ParamError("idempotency_key", "must be a non-empty string", "pass any string unique to this request")
        return f"{ws}-m{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    return f"{ws}-{_stamp(now)}-{secrets.token_hex(3)}"
