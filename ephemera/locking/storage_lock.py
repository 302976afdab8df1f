"""Short locks held as objects in the state bucket, with an expiry (e.g. the per-run
lock of :meth:`ephemera.model.ledger.Ledger.update`).

Built on :mod:`ephemera.locking.generations`: a generation is free when its holder
released it, when it is past its expiry (a crashed holder blocks others for no longer
than the ttl), when it is unreadable, or when its holder ran on this very machine
(same host name and boot) and that process is gone: a killed action must not hold up
every update of its run for the whole ttl.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from functools import cache
from pathlib import Path

from ephemera import layout
from ephemera.errors import EphemeraError
from ephemera.locking.generations import Generations
from ephemera.storage.base import Storage


class LockTimeout(EphemeraError):
    code = "LOCK_TIMEOUT"
    retryable = True


@cache
def boot_id() -> str:
    """This machine's boot id ('' where the kernel does not tell): a pid names the same
    process only within one boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def holder_is_gone(body: dict) -> bool:
    """True only when the holder provably ended: it ran on this machine, in this boot,
    and its pid is no longer alive. Anything else (another machine, no boot id) is
    left to the expiry."""
    if not boot_id() or body.get("host") != socket.gethostname() or body.get("boot_id") != boot_id():
        return False
    pid = body.get("pid")
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


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
            if float(body["expires"]) < time.time():
                return True
        except (KeyError, TypeError, ValueError):
            return True
        return holder_is_gone(body)

    # taking and releasing --------------------------------------------------------
    def try_acquire(self) -> bool:
        """Take the lock if it is free now; False if a live holder has it."""
        top, body = self.generations.current()
        if top and not self._is_free(body):
            return False
        body = {
            "holder": self.token,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "boot_id": boot_id(),
            "expires": time.time() + self.ttl,
            "released": False,
        }
        if not self.generations.claim(top, body):
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
