"""Locks held as objects in the state bucket, with an expiry.

The lock named ``N`` is a folder of numbered objects,
``ephemera/locks/N/<generation>.json``; the highest generation is the current
holder, and its body says who holds it and until when. Taking the lock is
``put_if_absent`` of generation ``n + 1`` after reading generation ``n`` and finding
it free: released by its holder, past its expiry (a crashed holder blocks others for
no longer than the ttl), or unreadable. Nothing is deleted to take a lock over or to
release it, so there is no "read, then delete" race in which one contender deletes
the lock another has just taken: contenders that all find generation ``n`` free race
for ``n + 1`` and ``put_if_absent`` lets exactly one win. Releasing overwrites the
holder's own generation with ``released: true``; generations older than the one
just superseded are pruned by the next holder. A contender so slow that the
generation it created had already been taken and pruned sees a newer generation when
it lists again right after creating its own, and withdraws. This is the scheme of
:mod:`ephemera.workspace_lock`. Correctness rests on the backend's ``put_if_absent``
(conditional PUT, ``link()``, or the claim protocol of the ibm_cos backend).
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
import uuid

from ephemera import layout
from ephemera.errors import EphemeraError, NoSuchKeyError, StorageError
from ephemera.storage.base import Storage

_GEN_RE = re.compile(r"^(\d{12})\.json$")
log = logging.getLogger(__name__)


class LockTimeout(EphemeraError):
    code = "LOCK_TIMEOUT"
    retryable = True


class StorageLock:
    """``with StorageLock(storage, bucket, "run-x", ttl=60): ...``"""

    def __init__(self, storage: Storage, bucket: str, name: str, ttl: float = 60.0, wait: float = 30.0):
        self.storage, self.bucket, self.name = storage, bucket, name
        self.prefix = layout.lock_key(f"{name}/")  # the folder of this lock's generations
        self.ttl, self.wait = ttl, wait  # seconds a holder keeps it; seconds acquire() waits
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.generation = 0  # the generation this lock holds (0: none)
        self.held = False

    # reading ---------------------------------------------------------------------
    def _key(self, gen: int) -> str:
        return f"{self.prefix}{gen:012d}.json"

    def _generations(self) -> list[int]:
        gens = []
        for info in self.storage.list(self.bucket, self.prefix):
            m = _GEN_RE.match(info.key[len(self.prefix):])
            if m:
                gens.append(int(m.group(1)))
        return sorted(gens)

    def _read(self, gen: int) -> dict | None:
        try:
            body = json.loads(self.storage.get(self.bucket, self._key(gen)))
        except NoSuchKeyError:  # pruned: a newer generation exists
            return None
        except ValueError:  # a torn or foreign object: treat as free
            return {"released": True}
        return body if isinstance(body, dict) else {"released": True}

    @staticmethod
    def _is_free(body: dict | None) -> bool:
        if not body or body.get("released"):
            return True
        try:
            return float(body["expires"]) < time.time()
        except (KeyError, TypeError, ValueError):
            return True

    # taking and releasing --------------------------------------------------------
    def try_acquire(self) -> bool:
        """Take the lock if it is free now; False if a live holder has it."""
        gens = self._generations()
        top = gens[-1] if gens else 0
        if top and not self._is_free(self._read(top)):
            return False
        mine = top + 1
        body = {"holder": self.token, "generation": mine, "expires": time.time() + self.ttl, "released": False}
        if not self.storage.put_if_absent(self.bucket, self._key(mine), json.dumps(body).encode()):
            return False  # another contender took generation top + 1 first
        gens = self._generations()
        if gens and gens[-1] > mine:
            # we read generation `top` so long ago that `mine` had been taken and pruned
            # since: a newer generation holds the lock. Withdraw (never the top object).
            self._delete(mine)
            return False
        self.generation, self.held = mine, True
        for gen in gens:  # keep the one just superseded, for anyone still reading it
            if gen >= top:
                break
            self._delete(gen)
        return True

    def acquire(self) -> "StorageLock":
        deadline = time.monotonic() + self.wait
        delay = 0.005
        while not self.try_acquire():
            if time.monotonic() > deadline:
                raise LockTimeout(f"lock '{self.name}' is held by another process; try again later")
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
        return self

    def release(self) -> None:
        """Mark this holder's generation released (only ever our own object)."""
        if not self.held:
            return
        self.held = False
        body = {"holder": self.token, "generation": self.generation, "released": True, "released_at": time.time()}
        self.storage.put(self.bucket, self._key(self.generation), json.dumps(body).encode())

    def _delete(self, gen: int) -> None:
        try:
            self.storage.delete(self.bucket, self._key(gen))
        except StorageError as exc:  # housekeeping only: the next holder prunes it
            log.debug("could not delete generation %s of lock '%s': %s", gen, self.name, exc.message)

    def __enter__(self) -> "StorageLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
