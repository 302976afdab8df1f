"""The generation scheme both storage locks are built on.

A lock is a folder of numbered objects, ``<prefix><generation>.json``; the highest
generation is the current holder. Taking the lock is ``put_if_absent`` of
generation ``n + 1`` after reading generation ``n`` and finding it free (what "free"
means is the lock's own rule). Nothing is deleted to take a lock over or to release
it, so there is no "read, then delete" race in which one contender deletes the lock
another has just taken: contenders that all find generation ``n`` free race for
``n + 1`` and ``put_if_absent`` lets exactly one win. A contender so slow that the
generation it created had already been taken and pruned sees a newer generation when
it lists again right after creating its own, and withdraws. Releasing overwrites the
holder's own generation; generations older than the one just superseded are pruned
by the next holder. Correctness rests on the backend's ``put_if_absent``
(conditional PUT, ``link()``, or the claim protocol of the ibm_cos backend).
"""

from __future__ import annotations

import json
import logging
import re

from ephemera.errors import NoSuchBucketError, NoSuchKeyError, StorageError
from ephemera.storage.base import Storage

_GEN_RE = re.compile(r"^(\d{12})\.json$")
log = logging.getLogger(__name__)


class Generations:
    def __init__(self, storage: Storage, bucket: str, prefix: str):
        self.storage, self.bucket = storage, bucket
        self.prefix = prefix  # the folder of this lock's generations, ending in "/"

    def key(self, gen: int) -> str:
        return f"{self.prefix}{gen:012d}.json"

    def numbers(self) -> list[int]:
        """Every generation present, oldest first ([] when the lock was never taken)."""
        gens = []
        try:
            for info in self.storage.list(self.bucket, self.prefix):
                m = _GEN_RE.match(info.key[len(self.prefix) :])
                if m:
                    gens.append(int(m.group(1)))
        except NoSuchBucketError:
            return []
        return sorted(gens)

    def read(self, gen: int) -> dict | None:
        """A generation's body; None if it was pruned; a released body if unreadable."""
        try:
            body = json.loads(self.storage.get(self.bucket, self.key(gen)))
        except NoSuchKeyError:
            return None
        except ValueError:  # a torn or foreign object: treat it as free
            return {"released": True, "note": "unreadable lock object"}
        return body if isinstance(body, dict) else {"released": True, "note": "unreadable lock object"}

    def current(self) -> tuple[int, dict | None]:
        """(highest generation, its body); (0, None) when the lock was never taken."""
        gens = self.numbers()
        return (gens[-1], self.read(gens[-1])) if gens else (0, None)

    def claim(self, after: int, body: dict) -> bool:
        """Create generation ``after + 1`` with ``body``; True if this call now holds it."""
        mine = after + 1
        if not self.storage.put_if_absent(self.bucket, self.key(mine), json.dumps({**body, "generation": mine}).encode()):
            return False  # another contender took it first
        gens = self.numbers()
        if gens and gens[-1] > mine:
            # we read generation `after` so long ago that `mine` had been taken and pruned
            # since: a newer generation holds the lock. Withdraw (never the top object).
            self.delete(mine)
            return False
        for gen in gens:  # keep the one just superseded, for anyone still reading it
            if gen >= after:
                break
            self.delete(gen)
        return True

    def write(self, gen: int, body: dict) -> None:
        """Overwrite a generation this caller holds (to release it)."""
        self.storage.put(self.bucket, self.key(gen), json.dumps({**body, "generation": gen}).encode())

    def delete(self, gen: int) -> None:
        try:
            self.storage.delete(self.bucket, self.key(gen))
        except StorageError as exc:  # housekeeping only: the next holder prunes it
            log.debug("could not delete %s: %s", self.key(gen), exc.message)
