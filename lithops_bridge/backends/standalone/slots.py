"""A batch's slots: how a call outlives the VM that claimed it, with one result.

Every slot (``keys.slot_key``) is created with ``put_if_absent`` and never changed,
so exactly one writer owns it. Slot 0 holds the first claim. Whoever owns slot
``s + 1`` decides the fate of the claim in slot ``s``:

- the claimer, when its calls end, writes its **result** there: the batch is done;
- another VM, once the claimer's presence went silent (``presence.reclaim_after``)
  and while ``s < retries``, writes its own **claim** there and runs the batch again;
- the client writes **abandoned** there when no VM is left, or the attempts are used.

A claimer that comes back late finds slot ``s + 1`` taken and drops its results, so
a batch has at most one result, from its latest claim, and the client (which reads
results only from slots it lists) never sees two. Bodies are pickled dicts with a
``kind``; a writer's ``token`` is the same on every retry of one write, so a retried
``put_if_absent`` whose first attempt landed is recognised as its own.
"""

from __future__ import annotations

import pickle

from ephemera.errors import NoSuchBucketError, NoSuchKeyError

CLAIM, RESULT, ABANDONED = "claim", "result", "abandoned"
DEFAULT_RETRIES = 2  # claims of a batch after the first one (standalone.retries)


def read(store, bucket: str, key: str) -> dict | None:
    """The slot's body, or None while the slot is free."""
    try:
        return pickle.loads(store.get(bucket, key))
    except (NoSuchKeyError, NoSuchBucketError):
        return None


def take(store, bucket: str, key: str, body: dict) -> bool:
    """Own the slot with ``body`` (which has a ``token``); True if this writer owns it,
    also when an earlier attempt of the same write already landed."""
    if store.put_if_absent(bucket, key, pickle.dumps(body)):
        return True
    current = read(store, bucket, key)
    return current is not None and current.get("token") == body["token"]


def latest(slot_keys: dict[int, set[int]], batch: int) -> int | None:
    """The highest slot listed for ``batch`` (None: no claim yet)."""
    taken = slot_keys.get(batch)
    return max(taken) if taken else None
