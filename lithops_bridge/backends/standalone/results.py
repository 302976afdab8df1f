"""The results half of the standalone server: each finished batch's outcomes are written
into the slot after its claim, retried with backoff (``UPLOAD_DELAYS``); a claim superseded
meanwhile drops them; if storage keeps refusing them, failure outcomes are written
instead, and if even those fail the claim is released so the batch runs again. A job
the client already finished and deleted keeps no late result.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from datetime import datetime, timezone
from typing import Any

import cloudpickle

from ephemera.errors import NoSuchBucketError, NoSuchKeyError
from lithops_bridge.backends.standalone import keys, slots
from lithops_bridge.backends.standalone.seal import RunSeal
from lithops_bridge.backends.standalone.wake import Bell, ring
from lithops_bridge.errors import BridgeError
from lithops_bridge.outcomes import outcome_call_ids

log = logging.getLogger("lithops_bridge.agent.server")
UPLOAD_DELAYS = (0.0, 0.2, 0.5, 1.0, 2.0, 4.0)  # seconds before each attempt to write a results object


def failure_outcomes(call_ids: list[int], exc: BaseException) -> list[dict]:
    """The outcomes of calls that failed with ``exc``, as a batch reports them."""
    blob = cloudpickle.dumps(exc)
    return [
        {
            "call_id": i,
            "ok": False,
            "exc": blob,
            "exc_type": type(exc).__name__,
            "exc_module": type(exc).__module__,
            "exc_message": str(exc),
            "traceback": "",
            "stats": {"exception": True},
        }
        for i in call_ids
    ]


class ResultWriter:
    """Writes batches' claims and results for :class:`~lithops_bridge.backends.standalone.server.TaskServer`,
    with the server's storage, identity and run seal."""

    store: Any  # the run's storage (put_if_absent, head, delete)
    bucket: str  # the run's bucket
    run_id: str  # the run whose jobs this VM serves
    worker: int  # this VM's worker index
    seal: RunSeal  # seals and checks every object with the run key
    upload_delays: tuple  # backoff of result uploads
    stopping: threading.Event  # set while the agent stops: nothing more is written
    _wake: "threading.Event | Bell"  # wakes the server's loop
    _released: deque  # (job_key, batch, slot) whose claim an upload gave back: claim again

    def _token(self, jk: str, b: int, slot: int) -> str:
        """What this VM (and this agent process) writes into a slot it owns, to know it again."""
        return f"{self.worker}:{os.getpid()}:{jk}:{b}:{slot}"

    def _claim_body(self, jk: str, b: int, slot: int) -> dict:
        """What this VM writes into slot ``slot`` of batch ``b`` to claim it."""
        return {
            "kind": slots.CLAIM,
            "worker": self.worker,
            "pid": os.getpid(),
            "token": self._token(jk, b, slot),
            "at": datetime.now(timezone.utc).isoformat(),
        }

    def _write_result(
        self, jk: str, b: int, slot: int, outcomes: Any, delays: tuple = ()
    ) -> tuple[bool | None, BaseException | None]:
        """Own the slot after the claim with the results: (True, _), (False, _) if the
        claim was superseded (the results are dropped), (None, last error) if storage
        kept refusing."""
        key = keys.slot_key(self.run_id, jk, b, slot + 1)
        body = {"kind": slots.RESULT, "worker": self.worker, "token": self._token(jk, b, slot + 1), "outcomes": outcomes}
        last = None
        for delay in delays or self.upload_delays:
            if delay and self.stopping.wait(delay):
                return None, last
            try:
                won = slots.take(self.store, self.bucket, key, body, self.seal)
            except Exception as exc:  # noqa: BLE001 - retried, then reported to the caller
                last = exc
                log.warning("writing the results of batch %d of job %s failed: %s", b, jk, exc)
                continue
            if not won:
                call_ids = outcome_call_ids(outcomes)
                log.warning(
                    "the results of calls %d-%d of job %s are dropped: another VM took them over (attempt %d)",
                    call_ids[0],
                    call_ids[-1],
                    jk,
                    slot + 2,
                )
                return False, None
            self._drop_if_cleaned(jk, key)
            return True, None
        return None, last

    def _drop_if_cleaned(self, jk: str, key: str) -> bool:
        """A job the client already finished (and deleted) must keep no late slot: delete
        ``key`` (just written) if the job left the queue; True if so. The client deletes
        the queue entry before the slots, so a slot written after its cleanup sees it gone."""
        try:  # one byte, not a head: a head may read the whole job to report its hash
            self.store.get(self.bucket, keys.queue_key(self.run_id, jk), (0, 0))
        except (NoSuchKeyError, NoSuchBucketError):
            self.store.delete(self.bucket, key)
            return True
        except Exception:  # noqa: BLE001 - best effort: the run's bucket is cleaned with the run
            pass
        return False

    def _upload(self, jk: str, b: int, slot: int, outcomes: Any, client_bell: str | None = None) -> None:
        """Write the batch's results; failure outcomes if that keeps failing; else give the claim back.
        ``client_bell``: the job's client's bell (same machine), rung once a result is written."""
        written, last = self._write_result(jk, b, slot, outcomes)
        if written is not None or self.stopping.is_set():
            if written and client_bell:
                ring(client_bell, f"{jk}/{b}/{slot + 1}")
            return
        call_ids = outcome_call_ids(outcomes)
        err = BridgeError(
            f"VM {self.worker} of run {self.run_id} ran calls {call_ids[0]}-{call_ids[-1]} of job {jk} but "
            f"could not write their results after {len(self.upload_delays)} attempts: "
            f"{type(last).__name__}: {last}"
        )
        if self._write_result(jk, b, slot, failure_outcomes(call_ids, err), delays=(0.0,))[0] is not None:
            if client_bell:
                ring(client_bell, f"{jk}/{b}/{slot + 1}")
            return
        log.error("writing failure results of batch %d of job %s failed; releasing its claim", b, jk)
        claim = keys.slot_key(self.run_id, jk, b, slot)
        try:
            if (slots.read(self.store, self.bucket, claim, self.seal) or {}).get("token") == self._token(jk, b, slot):
                self.store.delete(self.bucket, claim)
        except Exception as exc:  # noqa: BLE001 - the batch is taken over once this VM stops
            log.error("releasing the claim of batch %d of job %s failed: %s", b, jk, exc)
            return
        self._released.append((jk, b, slot))
        self._wake.set()
