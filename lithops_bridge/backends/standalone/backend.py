"""Standalone client: a job goes to storage, the run's agents run it, results come back.

``submit`` fails with BridgeError when no agent of the run is alive (no presence
younger than ``presence.STALE_AFTER``: a wrong or destroyed ``run_id``); otherwise it
cuts the job into batches (by factoring: a first round of one batch per process of
every live VM holding half the calls, then rounds that halve what is left, down to
``1 / BATCHES_PER_PROCESS`` of a process's share), writes it once under the run's
queue prefix, and registers it with a follower thread. The follower lists each active job's batch slots every ``poll_interval``
seconds (``slots``: a batch's result is the slot after its latest claim), resolves
the futures of each batch whose result appears, and, when every call of a job is
resolved, deletes the job's objects. A VM that dies with claimed calls is replaced by
another VM of the run, which takes them over (``standalone.retries`` times per
batch, default 2); the client only gives up, abandoning the batch (so no VM runs it
later) and failing its calls with BridgeError, once no live agent remains or the
attempts are used up. No credentials travel in the job: agents use their own
storage config.

Every object written here or read back is sealed with the run key
(``standalone.run_key``; see ``seal``): the job object before the VMs unpickle it, and
each slot before this client decodes it. A slot whose seal fails (planted by someone
who can write the bucket but lacks the key, or replayed from another run or place) is
never unpickled: the calls of its batch fail with a BridgeError saying so, instead of
waiting forever for a result that will not come.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import cloudpickle

from ephemera.errors import NoSuchBucketError, NoSuchKeyError
from ephemera.storage.base import delete_keys
from lithops_bridge.backends.standalone import keys, presence, slots, wake
from lithops_bridge.backends.standalone.pace import PACES, batch_floor, pace_key
from lithops_bridge.backends.standalone.reclaim import claimer_gone, listed_slots
from lithops_bridge.backends.standalone.seal import RunSeal, parse_key
from lithops_bridge.errors import BridgeError
from lithops_bridge.job import Job, factored_chunks, guided_chunks
from lithops_bridge.outcomes import apply_outcomes

log = logging.getLogger("lithops_bridge.standalone")
STALE_AFTER = presence.STALE_AFTER  # seconds without a presence write after which a VM counts as gone
CHECK_EVERY = 5.0  # seconds between checks of the claims of unfinished batches
PRESENCE_FOR = 1.0  # seconds a submit reuses the live VMs another submit of this process read
BATCHES_PER_PROCESS = 4  # the smallest batch is this fraction of a process's share (Pool.map's chunk size)


@dataclass
class _Active:
    """A submitted job the follower is watching."""

    job: Job  # the job (payload already in storage)
    futures: list  # one per call
    batches: list[tuple[int, int]]  # call index ranges
    retries: int  # claims of a batch after the first (standalone.retries)
    seen: set[int] = field(default_factory=set)  # batches already resolved
    claims: set[tuple[int, int]] = field(default_factory=set)  # (batch, slot) read and found to be a claim
    checked: float = field(default_factory=time.monotonic)  # last stale-claim check
    pace: bytes = b""  # what the function's pace is remembered by (pace.pace_key)


def _hinted(hints: list[bytes], act: _Active) -> dict[int, set[int]]:
    """batch -> slots that rings named for ``act``'s job (``<job_key>/<batch>/<slot>``; anything else is ignored)."""
    out: dict[int, set[int]] = {}
    for hint in hints:
        jk, _, rest = hint.decode("ascii", "replace").partition("/")
        batch, _, slot = rest.partition("/")
        if jk == act.job.job_key and batch.isdigit() and int(batch) < len(act.batches) and slot.isdigit() and len(slot) <= 2:
            out.setdefault(int(batch), set()).add(int(slot))
    return out


_LIVE: dict[tuple[str, str, str], tuple[float, list[dict]]] = {}  # (storage, bucket, run) -> (when read, live VMs)
_LIVE_LOCK = threading.Lock()


class StandaloneBackend:
    name = "standalone"

    def __init__(self, config: dict, storage_config: dict):
        from lithops_bridge.storage import Storage

        self.settings = dict(config["standalone"])
        self.run_id = self.settings["run_id"]
        self.seal = RunSeal(parse_key(self.settings.get("run_key")), self.run_id)
        self.storage = Storage(storage_config=storage_config)
        self.store, self.bucket = self.storage.ephemera_storage, self.storage.bucket
        self._storage_id = json.dumps(self.storage.config, sort_keys=True, default=str)  # which storage (memory only)
        self.same_host = bool(self.store.traits.same_host)  # the VMs are processes of this machine: wake-ups (see wake)
        # seconds between looks while a job is active (idle: it sleeps); on this machine a VM's result
        # rings the follower's bell, so the look is only the fallback of a lost ring
        default_poll = (0.02 if wake.wake_dir() else 0.005) if self.same_host else 0.5
        self.retries = int(self.settings.get("retries", slots.DEFAULT_RETRIES))
        self.stale_after = STALE_AFTER  # seconds of silence after which this client gives up on a VM
        self.check_every = CHECK_EVERY  # seconds between looks at the claims of unfinished batches
        self.poll = float(self.settings.get("poll_interval") or default_poll)
        # a batch shorter than this (of calls whose pace is known) costs more in storage round
        # trips than the tail it could balance: milliseconds here, a second on a cloud (claim_settle)
        self.min_batch_seconds = 0.05 if self.same_host else 1.0
        self._active: dict[str, _Active] = {}
        self._lock = threading.Lock()
        self._event = threading.Event()  # the follower's wait without a bell
        self._bell: wake.Bell | None = None  # the follower's bell while it runs (same machine only)
        self._wake: threading.Event | wake.Bell = self._event
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- capacity -----------------------------------------------------------------------
    def is_live(self, hb: dict, now: datetime | None = None) -> bool:
        """A presence of a running agent, fresh enough to count on."""
        return presence.is_live(hb, self.stale_after, now)

    def heartbeats(self) -> list[dict]:
        """The presence object of every task server of the run (see vm_service)."""
        return list(presence.read_all(self.store, self.bucket, self.run_id).values())

    def live_heartbeats(self) -> list[dict]:
        """The presence objects of the run's live VMs. A list with some is reused for
        ``PRESENCE_FOR`` seconds by the submits of this process (a script's back-to-back
        maps, each with its own executor); an empty one never is, so a run without a live
        VM fails the next submit at once. A VM that stopped meanwhile costs nothing but
        the size of the batches: any live VM claims any batch, and a job nobody can run
        fails as it would after a later stop."""
        cache_key = (self._storage_id, self.bucket, self.run_id)
        with _LIVE_LOCK:
            cached = _LIVE.get(cache_key)
        if cached is not None and time.monotonic() - cached[0] < PRESENCE_FOR:
            return cached[1]
        now = datetime.now(timezone.utc)
        live = [hb for hb in self.heartbeats() if self.is_live(hb, now)]
        with _LIVE_LOCK:
            for key in [k for k, (when, _l) in _LIVE.items() if time.monotonic() - when >= PRESENCE_FOR]:
                del _LIVE[key]  # a process that follows many runs keeps only the fresh ones
            if live:
                _LIVE[cache_key] = (time.monotonic(), live)
        return live

    def slots(self, live: list[dict]) -> int:
        """Processes across the run's live VMs (at least 1)."""
        per_vm = int(self.settings["worker_processes"])
        total = sum(min(per_vm, int(hb.get("worker_processes") or per_vm)) for hb in live)
        return max(1, total)

    def capacity(self) -> int:
        """Calls the run's live VMs run at once."""
        return self.slots(self.live_heartbeats())

    def batches(self, n: int, live: list[dict], chunksize: int | None, pace: bytes | None = None) -> list[tuple[int, int]]:
        """Call ranges of a job of ``n`` calls over the live VMs' processes, by factoring
        (``job.factored_chunks``): every batch here costs a claim, a result, a read and two
        deletes in storage, so the first round gives the processes half the job in one
        batch each, and later rounds halve what is left, down to the chunk size
        ``multiprocessing.Pool.map`` picks by default (``1 / BATCHES_PER_PROCESS`` of a
        process's share), which bounds the tail as equal batches of that size would;
        a function whose calls this process saw run (``pace``: its ``pace.pace_key``) gets no batch
        shorter than ``min_batch_seconds`` of them. ``chunksize`` fixes the size instead."""
        procs = self.slots(live)
        if chunksize:
            return guided_chunks(n, procs, chunksize)
        floor = max(1, -(-n // (BATCHES_PER_PROCESS * procs)))
        if pace is not None:
            floor = batch_floor(PACES.per_call(pace), -(-n // procs), floor, self.min_batch_seconds)
        return factored_chunks(n, procs, floor)

    # --- submit ---------------------------------------------------------------------------
    def submit(self, job: Job, futures: list) -> None:
        live = self.live_heartbeats()
        if not live:
            raise BridgeError(
                f"no agent of run '{self.run_id}' is alive (no heartbeat in the last {STALE_AFTER:g} s "
                f"in bucket '{self.bucket}'), so job {job.job_key} cannot run: check standalone.run_id, "
                "and that the run is applied and its VMs are up"
            )
        pace = pace_key(job.func, self.run_id)
        batches = self.batches(job.total_calls, live, job.chunksize, pace)
        data = job.pack(batches)  # one pickle of arguments per batch; raises before anything is written
        workers = sorted({int(hb["worker"]) for hb in live if str(hb.get("worker", "")).isdigit()})
        payload = {
            "job_key": job.job_key,
            "func": job.func,
            "modules": job.modules,
            "data": data,
            "extra_env": job.extra_env,
            "timeout": job.timeout,
            "batches": batches,
            "worker_processes": int(self.settings["worker_processes"]),
            "use_gpu": bool(self.settings.get("use_gpu")),
            "hard_dismantle_timeout": float(self.settings["hard_dismantle_timeout"]),
            "workers": workers,
            "retries": self.retries,
            "submitted_at": datetime.now(timezone.utc).isoformat(),
        }
        with self._lock:
            self._active[job.job_key] = _Active(job, futures, batches, self.retries, pace=pace)
        for f in futures:
            f._set_invoked()
        self._ensure_follower()
        if self._bell is not None:
            payload["wake"] = self._bell.name  # the VMs ring it with each result
        key = keys.queue_key(self.run_id, job.job_key)
        try:
            self.store.put(self.bucket, key, self.seal.seal(keys.JOB_KIND, key, cloudpickle.dumps(payload)))
        except Exception as exc:
            with self._lock:
                self._active.pop(job.job_key, None)
            raise BridgeError(f"cannot submit job {job.job_key} to run {self.run_id}: {exc}") from exc
        if self.same_host:
            for worker in workers:  # the VMs look at the queue now rather than at their next poll
                wake.ring(wake.server_bell(self.bucket, self.run_id, worker), "job")
        self._wake.set()

    def _ensure_follower(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            if self.same_host and self._bell is None:
                wake.sweep()
                self._bell = wake.reuse_client_bell() or wake.open_bell(wake.client_bell())
            self._wake = self._bell or self._event
            self._thread = threading.Thread(target=self._follow, name=f"lithops-bridge-follow-{self.run_id}", daemon=True)
            self._thread.start()

    # --- follow -----------------------------------------------------------------------------
    def _follow(self) -> None:
        try:
            self._follow_loop()
        finally:
            bell, self._bell = self._bell, None
            self._wake = self._event
            if bell is not None:
                wake.put_back(bell)

    def _follow_loop(self) -> None:
        listed = 0.0  # when the slots of the active jobs were last listed
        while not self._stop.is_set():
            with self._lock:
                active = list(self._active.values())
            if not active:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            # with a bell, a VM's ring names the slot it wrote (a hint: the slot is read and
            # checked as a listed one); the listing runs every poll interval all the same
            hints = self._bell.take() if self._bell is not None else []
            full = self._bell is None or time.monotonic() - listed >= self.poll
            listed = time.monotonic() if full else listed
            progressed = False
            for act in active:
                try:
                    progressed |= self._poll_job(act, None if full else _hinted(hints, act))
                except Exception as exc:  # noqa: BLE001 - storage hiccup: retry next round
                    log.warning("following job %s: %s", act.job.job_key, exc)
            if not progressed:
                self._wake.wait(self.poll)
                if self._bell is None:
                    self._wake.clear()

    def _poll_job(self, act: _Active, hinted: dict[int, set[int]] | None = None) -> bool:
        """Read the new slots of ``act`` (``hinted``: only those, without listing) and resolve its batches."""
        run, jk = self.run_id, act.job.job_key
        if hinted is None:
            try:
                taken = listed_slots(self.store, self.bucket, run, jk)
            except NoSuchBucketError:
                taken = {}
        progressed = False
        for batch, batch_slots in (taken if hinted is None else hinted).items():
            if batch in act.seen:
                continue
            for slot in sorted(s for s in batch_slots if (batch, s) not in act.claims):
                body = slots.read(self.store, self.bucket, keys.slot_key(run, jk, batch, slot), self.seal)
                if body is None:
                    continue
                if body.get("kind") == slots.FORGED:
                    self._fail_batch(
                        act,
                        batch,
                        BridgeError(
                            f"calls {act.batches[batch][0]}-{act.batches[batch][1] - 1} of job {jk} cannot be trusted: "
                            f"{body['reason']}; whoever can write bucket '{self.bucket}' without the run key wrote it "
                            "(nothing was unpickled)"
                        ),
                    )
                    progressed = True
                    break
                if body.get("kind") == slots.RESULT:
                    start, end = act.batches[batch]
                    apply_outcomes(act.futures[start:end], body["outcomes"])
                    PACES.record(act.pace, body["outcomes"])
                    act.seen.add(batch)
                    progressed = True
                    break
                act.claims.add((batch, slot))  # a take-over (or our abandon): its result comes in a later slot
        if len(act.seen) == len(act.batches):
            self._finish(act)
        elif hinted is None and time.monotonic() - act.checked > self.check_every:
            act.checked = time.monotonic()
            self._check_stale_claims(act, taken)
        return progressed

    def _check_stale_claims(self, act: _Active, taken: dict[int, set[int]]) -> None:
        """Abandon the batches no live agent will ever answer, and fail their calls."""
        beats = presence.read_all(self.store, self.bucket, self.run_id)
        now = datetime.now(timezone.utc)
        anyone_live = any(self.is_live(hb, now) for hb in beats.values())
        if anyone_live and all(self.is_live(hb, now) for hb in beats.values()):
            return  # every VM answers: each claim will end in a result
        run, jk = self.run_id, act.job.job_key
        for batch, (start, end) in enumerate(act.batches):
            if batch in act.seen:
                continue
            slot = max(taken[batch]) if taken.get(batch) else None
            claim = None if slot is None else slots.read(self.store, self.bucket, keys.slot_key(run, jk, batch, slot), self.seal)
            if claim is not None and claim.get("kind") != slots.CLAIM:
                continue  # a result, listed after this round's listing: the next round reads it
            if claim is None:
                if anyone_live:
                    continue
                err = BridgeError(
                    f"no agent of run {run} is alive any more to run calls {start}-{end - 1} of job {jk}: the run's VMs stopped"
                )
            else:
                assert slot is not None  # a claim was read, so its slot was listed
                beat = beats.get(str(claim.get("worker")))
                gone = not presence.holds(beat, claim, self.stale_after) if beat is not None else claimer_gone(claim, beats)
                if not gone or (anyone_live and slot < act.retries):
                    continue  # alive, or another VM will take the calls over
                why = (
                    "no live agent is left to run them again"
                    if not anyone_live
                    else f"they were tried {slot + 1} times (standalone.retries = {act.retries})"
                )
                err = BridgeError(
                    f"the agent of VM {claim.get('worker')} of run {run} stopped while running "
                    f"calls {start}-{end - 1} of job {jk}; {why}"
                )
            abandon = {"kind": slots.ABANDONED, "token": f"client:{jk}:{batch}", "reason": str(err)}
            next_slot = 0 if slot is None else slot + 1
            if not slots.take(self.store, self.bucket, keys.slot_key(run, jk, batch, next_slot), abandon, self.seal):
                continue  # a VM got there first (a result or a take-over): the next round sees it
            for fut in act.futures[start:end]:
                if not fut._finished():
                    fut._set_error(err, None)
            act.seen.add(batch)
        if len(act.seen) == len(act.batches):
            self._finish(act)

    def _fail_batch(self, act: _Active, batch: int, err: BridgeError) -> None:
        start, end = act.batches[batch]
        for fut in act.futures[start:end]:
            if not fut._finished():
                fut._set_error(err, None)
        act.seen.add(batch)

    def _finish(self, act: _Active) -> None:
        with self._lock:
            self._active.pop(act.job.job_key, None)
        self.clean({act.job.job_key})

    # --- cleanup ---------------------------------------------------------------------------
    def clean(self, job_keys: set[str]) -> None:
        """Delete the queue entry, claims and results of finished jobs."""
        for jk in job_keys:
            with self._lock:
                if jk in self._active:
                    continue
            try:
                self.store.delete(self.bucket, keys.queue_key(self.run_id, jk))  # first: no VM loads it again
                slot_keys = [info.key for info in self.store.list(self.bucket, keys.job_prefix(self.run_id, jk))]
                delete_keys(self.store, self.bucket, slot_keys)
            except (NoSuchBucketError, NoSuchKeyError):
                continue
            except Exception as exc:  # noqa: BLE001 - cleanup is best effort
                log.warning("cleaning job %s: %s", jk, exc)

    def close(self) -> None:
        """Stop following once nothing is outstanding (pending jobs keep being followed)."""
        with self._lock:
            idle = not self._active
        if idle:
            self._stop.set()
            self._wake.set()
