"""One open run per workspace: a lock whose every take-over is a new generation.

The lock of workspace ``W`` is a folder of numbered objects,
``ephemera/locks/workspaces/W/<generation>.json``; the highest generation is the
current holder. Taking the lock is ``put_if_absent`` of generation ``n + 1`` after
reading generation ``n`` and finding it free. Nothing is ever deleted to take the
lock over, so there is no "read, then delete" race: two contenders that both find
generation ``n`` free race for ``n + 1`` and ``put_if_absent`` lets exactly one win,
on every backend (conditional PUT on S3, ``link()`` on localhost, the claim
protocol on IBM COS, which has no conditional PUT).

Generation ``n`` is free when:

- its holder released it (the run reached DESTROYED), or
- its run is DESTROYED in the ledger (released was never written: a crash), or
- its run has no ledger record and the lock is past its expiry (the run's hard
  deadline plus the soft timeout) or older than ``grace`` seconds (the requesting
  action died between taking the lock and creating the record; a younger lock
  without a record is an invocation still in progress, not stale).

A run that is not DESTROYED holds its workspace even past the expiry: the reaper
destroys such a run, and until then a second run must not share its resources.

Releasing overwrites the holder's own generation with ``released: true``; old
generations are pruned by the next holder.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

from ephemera import layout
from ephemera.errors import NoSuchBucketError, NoSuchKeyError
from ephemera.storage.base import Storage

_GEN_RE = re.compile(r"^(\d{12})\.json$")
ATTEMPTS = 8  # rounds of "read the top generation, try the next one"


@dataclass
class LockResult:
    holder: str | None  # the run id holding the lock after the call
    acquired: bool  # True only if this call took the lock
    token: str = ""  # proof of ownership, for release() by the same invocation


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


class WorkspaceLock:
    def __init__(self, storage: Storage, bucket: str, workspace: str, grace: float = 300.0):
        self.storage, self.bucket = storage, bucket
        self.workspace = workspace
        self.prefix = layout.lock_key(f"workspaces/{workspace}/")
        self.grace = float(grace)  # seconds a lock without a ledger record counts as in progress

    # reading -----------------------------------------------------------------------
    def _generations(self) -> list[int]:
        gens = []
        try:
            for info in self.storage.list(self.bucket, self.prefix):
                m = _GEN_RE.match(info.key[len(self.prefix):])
                if m:
                    gens.append(int(m.group(1)))
        except (NoSuchKeyError, NoSuchBucketError):  # a missing bucket: no lock yet
            return []
        return sorted(gens)

    def _key(self, gen: int) -> str:
        return f"{self.prefix}{gen:012d}.json"

    def _read(self, gen: int) -> dict | None:
        try:
            return json.loads(self.storage.get(self.bucket, self._key(gen)))
        except NoSuchKeyError:
            return None
        except ValueError:
            return {"run_id": None, "released": True, "note": "unreadable lock object"}

    def current(self) -> tuple[int, dict | None]:
        """(highest generation, its body); (0, None) when the lock was never taken."""
        gens = self._generations()
        if not gens:
            return 0, None
        return gens[-1], self._read(gens[-1])

    def holder(self) -> dict | None:
        """The body of the current generation, or None if never taken."""
        return self.current()[1]

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
            if gen and not self.is_free(body, is_open):
                return LockResult(body.get("run_id"), False)
            record = {"run_id": run_id, "token": token, "generation": gen + 1, "workspace": self.workspace,
                      "acquired_at": now_utc().isoformat(), "expires": expires.isoformat(), "released": False}
            if self.storage.put_if_absent(self.bucket, self._key(gen + 1), json.dumps(record).encode()):
                self._prune(gen)
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
        released = {**body, "released": True, "released_at": now_utc().isoformat()}
        self.storage.put(self.bucket, self._key(gen), json.dumps(released).encode())
        return True

    def _prune(self, below: int) -> None:
        """Delete generations older than ``below`` (the one just superseded is kept)."""
        for gen in self._generations():
            if gen >= below:
                break
            try:
                self.storage.delete(self.bucket, self._key(gen))
            except Exception:  # noqa: BLE001 - pruning is housekeeping only
                pass
