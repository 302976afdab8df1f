"""The task servers' presence objects: which VMs of a run are alive.

Each server writes ``servers/<worker>.json`` every ``interval`` seconds (see
lithops_bridge.vm_service) with its ``pid``, ``state`` and ``at``. A server is
*alive* while its state is not ``stopped`` and its last write is younger than the
threshold the caller chooses: the client gives up on VMs only after
``STALE_AFTER`` (generous: a slow VM must not fail calls), while agents re-claim a
dead VM's calls after ``reclaim_after(presence)`` (a few intervals: a false alarm
only runs a batch twice, whose first result is then ignored).
"""

from __future__ import annotations

from datetime import datetime, timezone

from ephemera.storage.objects import json_objects
from lithops_bridge.backends.standalone import keys

STALE_AFTER = 30.0  # seconds without a presence write after which the client counts a VM as gone
RECLAIM_INTERVALS = 5  # presence intervals without a write after which agents take over a VM's claims
RECLAIM_MIN = 5.0  # ... but never sooner than this many seconds


def read_all(store, bucket: str, run_id: str) -> dict[str, dict]:
    """worker (as a string) -> its presence object (the core's one reader of such status objects)."""
    return {str(body.get("worker")): body for body in json_objects(store, bucket, keys.servers_prefix(run_id))}


def age(presence: dict, now: datetime | None = None) -> float | None:
    try:
        return ((now or datetime.now(timezone.utc)) - datetime.fromisoformat(presence["at"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None


def is_live(presence: dict | None, stale_after: float = STALE_AFTER, now: datetime | None = None) -> bool:
    """A running server whose last presence write is at most ``stale_after`` seconds old."""
    if not presence or presence.get("state") == "stopped":
        return False
    seconds = age(presence, now)
    return seconds is not None and seconds <= stale_after


def reclaim_after(presence: dict | None) -> float:
    """Seconds of silence after which this server's claims are taken over."""
    interval = float((presence or {}).get("interval") or 5.0)
    return max(RECLAIM_MIN, RECLAIM_INTERVALS * interval)


def holds(presence: dict | None, claim: dict, stale_after: float) -> bool:
    """Whether the claimer of ``claim`` is still the live process that made it."""
    if presence is None or not is_live(presence, stale_after):
        return False
    return claim.get("pid") is None or presence.get("pid") is None or presence.get("pid") == claim.get("pid")
