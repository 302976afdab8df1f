"""Short locks held as objects in the state bucket, with an expiry (e.g. the per-run
lock of :meth:`ephemera.runs.Ledger.update`).

Built on :mod:`ephemera.generations`: a generation is free when its holder released
it, when it is past its expiry (a crashed holder blocks others for no longer than the
ttl), or when it is unreadable.
"""

from __future__ import annotations

import os
import socket
import time
import uuid

from ephemera import layout
from ephemera.errors import EphemeraError
from ephemera.locking.generations import Generations
from ephemera.storage.base import Storage


class LockTimeout(EphemeraError):
    code = "LOCK_TIMEOUT"
    retryable = True


class StorageLock:
    """``with StorageLock(storage, bucket, "run-x", ttl=60): ...``"""

    def __init__(self, storage: Storage, bucket: str, name: str, ttl: float = 60.0, wait: float = 30.0):
        self.storage, self.bucket, self.name = storage, bucket, name
        self.generations = Generations(storage, bucket, layout.lock_key(f"{name}/"))
        self.ttl, self.wait = ttl, wait  # seconds a holder keeps it; seconds acquire() waits
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.generation = 0  # the generation this lock holds (0: none)
        self.held = False

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
        top, body = self.generations.current()
        if top and not self._is_free(body):
            return False
        if not self.generations.claim(top, {"holder": self.token, "expires": time.time() + self.ttl, "released": False}):
            return False
        self.generation, self.held = top + 1, True
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
        self.generations.write(self.generation, {"holder": self.token, "released": True, "released_at": time.time()})

    def __enter__(self) -> "StorageLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
