"""Agent heartbeats: one object per VM of a run, rewritten every few seconds.

The agent writes ``ephemera/heartbeats/<run_id>/<worker>.json`` (see
:mod:`ephemera.layout`); the controller reads them to tell a live VM from a silent one.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from ephemera import layout
from ephemera.errors import NoSuchBucketError, NoSuchKeyError
from ephemera.storage.base import Storage
from ephemera.timeutil import now_iso, since

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 5.0  # seconds between an agent's heartbeats (its default)
SILENT_BEATS = 6  # missed heartbeats before a VM is called silent


def write_heartbeat(storage: Storage, bucket: str, run_id: str, worker: int, body: dict) -> None:
    """Store one VM's heartbeat (``body`` plus run, worker and the time)."""
    beat = {**body, "run_id": run_id, "worker": worker, "at": now_iso()}
    storage.put(bucket, layout.heartbeat_key(run_id, worker), json.dumps(beat).encode())


def read_heartbeats(storage: Storage, bucket: str, run_id: str) -> list[dict]:
    """Every VM's last heartbeat for the run (unreadable ones are skipped)."""
    beats = []
    try:
        infos = list(storage.list(bucket, layout.heartbeat_prefix(run_id)))
    except NoSuchBucketError:
        return beats
    for info in infos:
        try:
            beat = json.loads(storage.get(bucket, info.key))
        except (NoSuchKeyError, ValueError):
            continue
        if isinstance(beat, dict):
            beats.append(beat)
    return beats


def seconds_since_last(storage: Storage, bucket: str, run_id: str, now: datetime | None = None) -> float | None:
    """Seconds since the most recent heartbeat of any VM of the run, or None if none."""
    latest = max((b["at"] for b in read_heartbeats(storage, bucket, run_id) if isinstance(b.get("at"), str)), default=None)
    return since(latest, now) if latest else None
