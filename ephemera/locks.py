"""Locks held as objects in the state bucket, with an expiry.

A lock is an object created with ``put_if_absent``; its body says who holds it and
until when. A lock past its expiry is broken by whoever next asks, so a crashed
holder never blocks others for longer than the ttl. Correctness rests on the
backend's ``put_if_absent`` (conditional PUT, ``link()``, or the claim protocol of
the ibm_cos backend).
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid

from ephemera import layout
from ephemera.errors import EphemeraError, NoSuchKeyError
from ephemera.storage.base import Storage


class LockTimeout(EphemeraError):
    code = "LOCK_TIMEOUT"
    retryable = True


class StorageLock:
    """``with StorageLock(storage, bucket, "run-x", ttl=60): ...``"""

    def __init__(self, storage: Storage, bucket: str, name: str, ttl: float = 60.0, wait: float = 30.0):
        self.storage, self.bucket, self.name = storage, bucket, name
        self.key = layout.lock_key(name)
        self.ttl, self.wait = ttl, wait
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held = False

    def try_acquire(self) -> bool:
        body = json.dumps({"holder": self.token, "expires": time.time() + self.ttl}).encode()
        if self.storage.put_if_absent(self.bucket, self.key, body):
            self.held = True
            return True
        self._break_if_expired()
        return False

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
        if not self.held:
            return
        self.held = False
        try:
            current = json.loads(self.storage.get(self.bucket, self.key))
        except (NoSuchKeyError, ValueError):
            return
        if current.get("holder") == self.token:
            self.storage.delete(self.bucket, self.key)

    def _break_if_expired(self) -> None:
        try:
            current = json.loads(self.storage.get(self.bucket, self.key))
        except NoSuchKeyError:
            return
        except ValueError:  # a torn or foreign object: treat as expired
            current = {"expires": 0}
        if current.get("expires", 0) < time.time():
            self.storage.delete(self.bucket, self.key)

    def __enter__(self) -> "StorageLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
