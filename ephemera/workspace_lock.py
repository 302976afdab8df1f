"""One open run per workspace: a lock object naming the run that holds it.

The lock is created with ``put_if_absent`` and names its run and an expiry (the
run's hard deadline plus the soft timeout). It is released when the run is
DESTROYED. A lock whose run is gone from the ledger, already DESTROYED, or past its
expiry is stale and is taken over; the takeover itself is another ``put_if_absent``
on a per-holder "break" key, so two contenders cannot both take over the same stale
lock.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Callable

from ephemera import layout
from ephemera.errors import NoSuchKeyError
from ephemera.storage.base import Storage


class WorkspaceLock:
    def __init__(self, storage: Storage, bucket: str, workspace: str):
        self.storage, self.bucket = storage, bucket
        self.key = layout.lock_key(f"workspace-{workspace}")

    def holder(self) -> dict | None:
        try:
            return json.loads(self.storage.get(self.bucket, self.key))
        except NoSuchKeyError:
            return None
        except ValueError:
            return {"run_id": None, "expires": "1970-01-01T00:00:00+00:00"}

    def acquire(self, run_id: str, expires: datetime, is_open: Callable[[str], bool]) -> str | None:
        """Take the lock for ``run_id``; returns the holder's run id afterwards (ours on success)."""
        body = json.dumps({"run_id": run_id, "expires": expires.isoformat()}).encode()
        for _ in range(3):
            if self.storage.put_if_absent(self.bucket, self.key, body):
                return run_id
            current = self.holder()
            if current is None:
                continue  # released meanwhile: try again
            holder = current.get("run_id")
            if holder == run_id:
                return run_id
            expired = datetime.fromisoformat(current["expires"]) < datetime.now(timezone.utc)
            if holder and not expired and is_open(holder):
                return holder
            # stale: exactly one contender may break it
            if self.storage.put_if_absent(self.bucket, f"{self.key}.break-{holder}", body):
                self.storage.delete(self.bucket, self.key)
        current = self.holder()
        return current.get("run_id") if current else None

    def release(self, run_id: str) -> None:
        current = self.holder()
        if current is not None and current.get("run_id") == run_id:
            self.storage.delete(self.bucket, self.key)
