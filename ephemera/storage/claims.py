"""``put_if_absent`` for object stores without a conditional PUT (IBM COS).

IBM COS does not document ``If-None-Match: *`` on PUT, so "create only if absent"
is built from plain PUT, LIST, HEAD and DELETE on a strongly consistent store.

Protocol, for object ``K`` (each attempt is one *round*):

1. If ``K`` exists (HEAD), return False.
2. Write a uniquely named claim ``K.claims/<client-time-ns>-<uuid>.claim``.
3. Wait ``settle`` seconds, then LIST ``K.claims/``.
4. Order the listed claims by ``(LastModified, name)``; ``LastModified`` is the
   server's time, the name starts with the writer's clock in nanoseconds, which
   breaks ties among claims stamped in the same (whole) second.
   Claims whose ``LastModified`` is more than ``stale_after`` seconds older than our
   own are from crashed callers: they are ignored and deleted.
5. If ours is first: HEAD ``K`` again; if absent, PUT ``K`` and return True, else
   False. Only *after* that, delete our claim.
   Otherwise (we lost): delete our claim, wait ``settle``, and start a new round,
   which usually ends at step 1 because the winner has written ``K`` by then.
   A round that cannot finish before ``timeout`` raises a retryable StorageError.

So a False result means that ``K`` was seen to exist; True means this call wrote it.

Why at most one caller writes ``K`` (assumptions first):

- A1 (strong consistency): a PUT that returned is visible to every later LIST
  and HEAD, and a DELETE to every later LIST. IBM COS and AWS S3 guarantee this.
- A2 (settle): a claim becomes visible within ``settle`` seconds of the time in its
  name and of its ``LastModified``; that is, ``settle`` exceeds the longest claim PUT
  plus the clock skew between callers and between the store's nodes.
- A3 (lease): a caller finishes a round within ``stale_after`` seconds of its claim
  (a process paused longer may have its claim treated as crashed).

Let A win a round and let B's claim come before A's in the order. If
``LastModified(B) < LastModified(A)`` B's PUT was stamped earlier by the server;
if they are equal, B's name (client time) is smaller. Either way B's claim was
visible before A's own PUT time plus ``settle`` (A2), which is before A's LIST,
so A saw it unless B had deleted it (A1). A caller deletes its claim only after
losing, or after deciding: having written ``K`` or found it present. Since A won,
every earlier claim had been withdrawn by then, i.e. its owner lost or ``K`` was
already written; in the latter case A's HEAD after its LIST sees ``K`` (A1) and A
writes nothing. Two winners A and B, B ordered after A: B's LIST misses A's
claim only if A deleted it, i.e. after A wrote ``K`` (or saw it), and B's HEAD then
sees ``K``. Hence at most one True. Liveness: the first claim of a round is never
beaten by a later one, so while nobody crashes, some caller wins; a crashed
caller's claim delays others by at most ``stale_after``.

The claim objects are ordinary objects: a ``list`` of ``K``'s folder may show them
for the duration of a round. Works with any backend implementing the Storage
interface (the tests also run it on localhost storage).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from datetime import timedelta
from typing import Callable

from ephemera.errors import NoSuchKeyError, StorageError
from ephemera.storage.base import ObjectInfo, Storage
from ephemera.storage.keys import validate_key

log = logging.getLogger(__name__)

DEFAULT_SETTLE = 1.0  # seconds between writing a claim and listing the claims
DEFAULT_STALE_AFTER = 60.0  # seconds after which a claim is taken as left by a crashed caller
CLAIMS_SUFFIX = ".claims/"
CLAIM_EXT = ".claim"


def claims_prefix(key: str) -> str:
    """The folder under which claims for ``key`` are written."""
    return key + CLAIMS_SUFFIX


def _exists(storage: Storage, bucket: str, key: str) -> bool:
    try:
        storage.head(bucket, key)
        return True
    except NoSuchKeyError:
        return False


def _order(info: ObjectInfo) -> tuple:
    return (info.last_modified, info.key)


def _new_claim_key(key: str) -> str:
    return validate_key(f"{claims_prefix(key)}{time.time_ns():020d}-{uuid.uuid4().hex}{CLAIM_EXT}")


def _claim_body(key: str) -> bytes:
    # for an operator looking at a leftover claim; nothing secret
    return json.dumps({"key": key, "host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}).encode()


def _round(
    storage: Storage, bucket: str, key: str, data: bytes, settle: float, stale_after: float, sleep: Callable[[float], None]
) -> bool | None:
    """One round: True (wrote K), False (K exists), None (lost to an earlier claim)."""
    mine = _new_claim_key(key)
    storage.put(bucket, mine, _claim_body(key))
    try:
        sleep(settle)
        listed = [c for c in storage.list(bucket, claims_prefix(key)) if c.key.endswith(CLAIM_EXT)]
        own = next((c for c in listed if c.key == mine), None)
        if own is None:  # removed as stale by another caller: this round is void
            log.warning("claim '%s' in bucket '%s' vanished during its round; retrying", mine, bucket)
            return None
        oldest_live = own.last_modified - timedelta(seconds=stale_after)
        live = []
        for claim in listed:
            if claim.last_modified < oldest_live:
                log.warning(
                    "ignoring and deleting stale claim '%s' in bucket '%s' (left by a crashed caller?)", claim.key, bucket
                )
                try:
                    storage.delete(bucket, claim.key)
                except StorageError as exc:
                    log.warning("could not delete stale claim '%s': %s", claim.key, exc.message)
            else:
                live.append(claim)
        if min(live, key=_order).key != mine:
            return None
        if _exists(storage, bucket, key):
            return False
        storage.put(bucket, key, data)
        return True
    finally:
        # the winner withdraws only after writing K; a failed withdrawal must not mask
        # the round's outcome (or its own error): the claim goes stale and is removed later
        try:
            storage.delete(bucket, mine)
        except StorageError as exc:
            log.warning(
                "could not withdraw claim '%s' in bucket '%s' (%s); it will be removed as stale after %g s",
                mine,
                bucket,
                exc.message,
                stale_after,
            )


def put_if_absent_by_claims(
    storage: Storage,
    bucket: str,
    key: str,
    data: bytes,
    *,
    settle: float = DEFAULT_SETTLE,
    stale_after: float = DEFAULT_STALE_AFTER,
    timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Create ``key`` with ``data`` only if absent, using claim objects; True if created here.

    ``settle`` must exceed the longest claim write plus clock skew (see the module
    docstring); ``timeout`` (default ``stale_after + 10 * settle``) bounds the wait
    for other callers, after which a retryable StorageError is raised."""
    validate_key(key)
    if settle < 0 or stale_after <= settle:
        raise StorageError(f"claim timing invalid: settle={settle}, stale_after={stale_after}; need 0 <= settle < stale_after")
    limit = stale_after + 10 * settle if timeout is None else timeout
    deadline = time.monotonic() + limit
    while True:
        if _exists(storage, bucket, key):
            return False
        outcome = _round(storage, bucket, key, bytes(data), settle, stale_after, sleep)
        if outcome is not None:
            return outcome
        if time.monotonic() >= deadline:
            raise StorageError(
                f"put_if_absent of '{key}' in bucket '{bucket}': other callers' claims under "
                f"'{claims_prefix(key)}' did not resolve within {limit:.0f}s; try again later",
                retryable=True,
            )
        sleep(settle)
