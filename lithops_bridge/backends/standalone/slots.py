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
results only from slots it lists) never sees two. Bodies are JSON dicts with a
``kind`` (a result's pickled values, one object per batch, and exceptions as base64
strings, unpickled only by the client, once the slot is authenticated), sealed with the run key (``seal``); a
writer's ``token`` is the same on every retry of one write, so a retried
``put_if_absent`` whose first attempt landed is recognised as its own. A slot whose
seal does not check out reads as ``{"kind": FORGED, "reason": ...}``: nobody owns it
by token, a server treats its batch as finished, and the client fails the batch's
calls with the reason (whoever planted it can stop a batch, never run code).
"""

from __future__ import annotations

import json

from ephemera.errors import NoSuchBucketError, NoSuchKeyError
from lithops_bridge.backends.standalone.seal import RunSeal, SealError
from lithops_bridge.outcomes import outcomes_from_json, outcomes_to_json

CLAIM, RESULT, ABANDONED, FORGED = "claim", "result", "abandoned", "forged"
DEFAULT_RETRIES = 2  # claims of a batch after the first one (standalone.retries)
KIND = "slot"  # the seal's object kind


def encode(body: dict) -> bytes:
    """The JSON of a slot body (a result's outcomes as ``outcomes.outcomes_to_json`` spells them)."""
    if "outcomes" in body:
        body = {**body, "outcomes": outcomes_to_json(body["outcomes"])}
    return json.dumps(body, separators=(",", ":")).encode()


def decode(data: bytes) -> dict:
    body = json.loads(data)
    if "outcomes" in body:
        body["outcomes"] = outcomes_from_json(body["outcomes"])
    return body


def read(store, bucket: str, key: str, seal: RunSeal) -> dict | None:
    """The slot's body, ``{"kind": FORGED, ...}`` if its seal fails, None while the slot is free."""
    try:
        blob = store.get(bucket, key)
    except (NoSuchKeyError, NoSuchBucketError):
        return None
    try:
        return decode(seal.unseal(KIND, key, blob))
    except SealError as exc:
        seal.report(exc, key)
        return {"kind": FORGED, "reason": exc.message}


def take(store, bucket: str, key: str, body: dict, seal: RunSeal) -> bool:
    """Own the slot with ``body`` (which has a ``token``); True if this writer owns it,
    also when an earlier attempt of the same write already landed."""
    if store.put_if_absent(bucket, key, seal.seal(KIND, key, encode(body))):
        return True
    current = read(store, bucket, key, seal)
    return current is not None and current.get("kind") != FORGED and current.get("token") == body["token"]


def latest(slot_keys: dict[int, set[int]], batch: int) -> int | None:
    """The highest slot listed for ``batch`` (None: no claim yet)."""
    taken = slot_keys.get(batch)
    return max(taken) if taken else None
