"""Agent heartbeats: one object per VM of a run, rewritten every few seconds.

The agent writes ``ephemera/heartbeats/<run_id>/<worker>.json`` (see
:mod:`ephemera.layout`), a :class:`ephemera.model.heartbeat.Heartbeat`; the controller
reads them to tell a live VM from a silent one. This module is the one place they are
written and read.
"""

from __future__ import annotations

import logging
from datetime import datetime

from ephemera import layout
from ephemera.model.heartbeat import Heartbeat, HeartbeatInvalid
from ephemera.storage.base import Storage
from ephemera.storage.objects import json_objects
from ephemera.timeutil import now_iso, since

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 5.0  # seconds between an agent's heartbeats (its default)
SILENT_BEATS = 6  # missed heartbeats before a VM is called silent


def write_heartbeat(storage: Storage, bucket: str, beat: Heartbeat) -> None:
    """Store one VM's heartbeat, stamped with the time now."""
    beat.at = now_iso()
    storage.put(bucket, layout.heartbeat_key(beat.run_id, beat.worker), beat.to_json())


def read_heartbeats(storage: Storage, bucket: str, run_id: str) -> list[Heartbeat]:
    """Every VM's last heartbeat for the run, in worker order (unreadable ones, and any
    that names another run, are skipped)."""
    beats = []
    for raw in json_objects(storage, bucket, layout.heartbeat_prefix(run_id)):
        try:
            beat = Heartbeat.from_dict(raw)
        except HeartbeatInvalid as exc:
            log.debug("run %s: heartbeat skipped: %s", run_id, exc)
            continue
        if beat.run_id == run_id:
            beats.append(beat)
    return sorted(beats, key=lambda b: b.worker)


def seconds_since_last(storage: Storage, bucket: str, run_id: str, now: datetime | None = None) -> float | None:
    """Seconds since the most recent heartbeat of any VM of the run, or None if none."""
    latest = max((b.at for b in read_heartbeats(storage, bucket, run_id)), default=None)
    return since(latest, now) if latest else None
