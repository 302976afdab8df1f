"""One run per event: the claim of an event's identity by a run.

Run ids are random (:mod:`ephemera.model.runids`), so a redelivered event cannot find
its run by id. Instead the first delivery claims the event's identity, a sha256 of
what makes two deliveries one event, at ``ephemera/events/<sha256>/<generation>.json``
(:mod:`ephemera.locking.generations`: ``put_if_absent`` of the next generation), with
the id of the run it is creating. Every later delivery finds the claim and maps to
that run: a duplicate.

A claim is taken over (a new generation, a new run) only when its run will never
exist: the claimer released it (it created nothing: the workspace was busy, a step
failed), or its run has no record and the claim is older than ``grace`` (the action
timeout: the claimer died between the claim and the record). Once a run record
exists, the event maps to that run for good, even after it is DESTROYED.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from ephemera import layout
from ephemera.errors import ParamError
from ephemera.locking.generations import Generations
from ephemera.model.runids import validate_run_id
from ephemera.storage.base import Storage
from ephemera.timeutil import now_utc

log = logging.getLogger("ephemera.lifecycle")
ATTEMPTS = 8  # rounds of "read the current claim, try the next generation"


@dataclass
class EventClaim:
    run_id: str  # the run the event belongs to ("" if no claim could be read)
    won: bool  # True if this call claimed the event, for the run id it passed
    generation: int  # the claim's generation (for release)


class EventClaims:
    """The claims of events in the state bucket."""

    def __init__(self, storage: Storage, bucket: str, grace: float):
        self.storage, self.bucket = storage, bucket
        self.grace = float(grace)  # seconds a claim without a run record counts as in progress

    def _generations(self, identity: str) -> Generations:
        return Generations(self.storage, self.bucket, layout.event_claim_prefix(identity))

    def _holder(self, body: dict | None) -> str | None:
        """The run a live claim names; None if the claim is free (released, unreadable)."""
        if not body or body.get("released"):
            return None
        try:
            return validate_run_id(body.get("run_id"))
        except ParamError:
            return None  # not a claim this code wrote: free

    def _stale(self, body: dict, now: datetime) -> bool:
        try:
            claimed = datetime.fromisoformat(body["claimed_at"])
        except (KeyError, TypeError, ValueError):
            return True
        return now - claimed > timedelta(seconds=self.grace)

    def claim(self, identity: str, run_id: str, has_record: Callable[[str], bool]) -> EventClaim:
        """Claim the event for ``run_id``, or find the run that has it."""
        gens = self._generations(identity)
        for _ in range(ATTEMPTS):
            gen, body = gens.current()
            holder = self._holder(body)
            if holder is not None and body is not None:  # (a holder comes from a body)
                if has_record(holder) or not self._stale(body, now_utc()):
                    return EventClaim(holder, False, gen)
                log.warning(
                    "event %s: run '%s' claimed it %s but was never recorded (its invocation died?); run '%s' takes it over",
                    identity[:12],
                    holder,
                    body.get("claimed_at"),
                    run_id,
                )
            if gens.claim(gen, {"run_id": run_id, "claimed_at": now_utc().isoformat(), "released": False}):
                return EventClaim(run_id, True, gen + 1)
        gen, body = gens.current()
        return EventClaim(self._holder(body) or "", False, gen)

    def release(self, identity: str, claim: EventClaim) -> bool:
        """Give the event up (its run was not created), so a redelivery may try again."""
        if not claim.won:
            return False
        gens = self._generations(identity)
        gen, body = gens.current()
        if gen != claim.generation or not body or body.get("run_id") != claim.run_id or body.get("released"):
            return False
        gens.write(gen, {**body, "released": True, "released_at": now_utc().isoformat()})
        return True
