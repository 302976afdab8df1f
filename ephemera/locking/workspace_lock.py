"""One open run per workspace: a lock built on :mod:`ephemera.locking.generations`, at
``ephemera/locks/workspaces/<W>/<generation>.json``.

Generation ``n`` is free when:

- its holder released it (the run reached DESTROYED), or
- its run is DESTROYED in the ledger (released was never written: a crash), or
- its run has no ledger record and the lock is past its expiry (the run's hard
  deadline plus the soft timeout) or older than ``grace`` seconds (the requesting
  action died between taking the lock and creating the record; a younger lock
  without a record is an invocation still in progress, not stale).

A run that is not DESTROYED holds its workspace even past the expiry: the reaper
destroys such a run, and until then a second run must not share its resources.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from ephemera import layout
from ephemera.locking.generations import Generations
from ephemera.storage.base import Storage
from ephemera.timeutil import now_utc

ATTEMPTS = 8  # rounds of "read the top generation, try the next one"


@dataclass
class LockResult:
    holder: str | None  # the run id holding the lock after the call
    acquired: bool  # True only if this call took the lock
    token: str = ""  # proof of ownership, for release() by the same invocation


class WorkspaceLock:
    def __init__(self, storage: Storage, bucket: str, workspace: str, grace: float = 300.0):
        self.storage, self.bucket = storage, bucket
        self.workspace = workspace
        self.generations = Generations(storage, bucket, layout.lock_key(f"workspaces/{workspace}/"))
        self.grace = float(grace)  # seconds a lock without a ledger record counts as in progress

    def current(self) -> tuple[int, dict | None]:
        """(highest generation, its body); (0, None) when the lock was never taken."""
        return self.generations.current()

    def holder(self) -> dict | None:
        """The body of the current generation, or None if never taken."""
        return self.current()[1]

    def _key(self, gen: int) -> str:
        return self.generations.key(gen)

    def is_free(self, body: dict | None, is_open: Callable[[str], bool | None], now: datetime | None = None) -> bool:
        if not body or body.get("released") or not body.get("run_id"):
            return True
        now = now or now_utc()
        state = is_open(body["run_id"])
        if state is not None:
            # A run that may still hold resources keeps its workspace past the expiry:
            # the reaper destroys it; a second apply must not share its resources.
            return not state
        try:  # no record: in progress while young, stale when old or expired
            if datetime.fromisoformat(body["expires"]) < now:
                return True
            taken = datetime.fromisoformat(body["acquired_at"])
        except (KeyError, TypeError, ValueError):
            return True
        return (now - taken) > timedelta(seconds=self.grace)

    # taking and releasing -------------------------------------------------------------
    def acquire(self, run_id: str, expires: datetime, is_open: Callable[[str], bool | None]) -> LockResult:
        """Take the lock for ``run_id`` unless a live run holds it.

        ``is_open(run_id)`` says whether a run still holds resources: True, False, or
        None when the ledger has no record of it. A live holder with the same run id
        (a duplicate invocation of the same event) is returned with ``acquired`` False."""
        token = uuid.uuid4().hex
        for _ in range(ATTEMPTS):
            gen, body = self.current()
            if gen and body and not self.is_free(body, is_open):  # (a missing body is free)
                return LockResult(body.get("run_id"), False)
            record = {
                "run_id": run_id,
                "token": token,
                "workspace": self.workspace,
                "acquired_at": now_utc().isoformat(),
                "expires": expires.isoformat(),
                "released": False,
            }
            if self.generations.claim(gen, record):
                return LockResult(run_id, True, token)
            # another contender took generation gen + 1 first: look again
        gen, body = self.current()
        return LockResult(body.get("run_id") if body else None, False)

    def release(self, run_id: str, token: str | None = None) -> bool:
        """Mark the current generation released if ``run_id`` (and ``token``, if given) holds it."""
        gen, body = self.current()
        if not gen or not body or body.get("run_id") != run_id or body.get("released"):
            return False
        if token is not None and body.get("token") != token:
            return False
        self.generations.write(gen, {**body, "released": True, "released_at": now_utc().isoformat()})
        return True
