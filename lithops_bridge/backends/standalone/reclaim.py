"""Finding the batches a dead VM claimed, so another VM of the run can take them over.

A claimer is dead when its presence went silent for ``presence.reclaim_after`` (or
says ``stopped``), when its presence names another process than the claim (the agent
restarted), or, with no presence at all, when its claim is older than that. Only the
latest slot of each batch matters (``slots``): a result or an abandon ends the batch;
a claim by a dead VM with attempts left (slot < ``retries``) can be taken over by
owning the next slot.
"""

from __future__ import annotations

from datetime import datetime, timezone

from lithops_bridge.backends.standalone import keys, presence, slots


def suspects(beats: dict[str, dict], since: str | None) -> set[str]:
    """Workers whose claims may be orphaned: silent or stopped servers, and servers that
    (re)started after the job was submitted (``since``, ISO time)."""
    now = datetime.now(timezone.utc)
    out = set()
    for worker, beat in beats.items():
        if not presence.is_live(beat, presence.reclaim_after(beat), now):
            out.add(worker)
        elif since and beat.get("started") and beat["started"] > since:
            out.add(worker)
    return out


def claimer_gone(claim: dict, beats: dict[str, dict]) -> bool:
    beat = beats.get(str(claim.get("worker")))
    if beat is None:
        try:
            age = (datetime.now(timezone.utc) - datetime.fromisoformat(claim["at"])).total_seconds()
        except (KeyError, TypeError, ValueError):
            return False
        return age > presence.RECLAIM_MIN
    return not presence.holds(beat, claim, presence.reclaim_after(beat))


def listed_slots(store, bucket: str, run_id: str, job_key: str) -> dict[int, set[int]]:
    """batch -> the slots that exist for it."""
    out: dict[int, set[int]] = {}
    for info in store.list(bucket, keys.batches_prefix(run_id, job_key)):
        parsed = keys.slot_of(run_id, job_key, info.key)
        if parsed is not None:
            out.setdefault(parsed[0], set()).add(parsed[1])
    return out


def orphans(store, bucket: str, run_id: str, job: dict, me: tuple[int, int], beats: dict[str, dict], final: set[int], seal):
    """Yield ``(batch, slot)``: the slot to claim for each batch whose latest claim is a
        dead VM's and has attempts left (``me``: this server's worker and pid, whose own
        claims are never taken over). Batches found finished (or forged: ``seal`` checks each
    slot) are added to ``final``."""
    jk, retries = job["job_key"], int(job.get("retries", slots.DEFAULT_RETRIES))
    for batch, taken in sorted(listed_slots(store, bucket, run_id, jk).items()):
        if batch in final:
            continue
        slot = max(taken)
        body = slots.read(store, bucket, keys.slot_key(run_id, jk, batch, slot), seal)
        if body is None:
            continue
        if body.get("kind") != slots.CLAIM:
            final.add(batch)
            continue
        if (body.get("worker"), body.get("pid")) == me or slot >= retries:
            continue
        if claimer_gone(body, beats):
            yield batch, slot + 1
