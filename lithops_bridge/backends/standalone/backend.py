"""Standalone client: a job goes to storage, the run's agents run it, results come back.

``submit`` fails with BridgeError when no agent of the run is alive (no heartbeat
younger than ``STALE_AFTER``: a wrong or destroyed ``run_id``); otherwise it cuts the
job into batches (guided self-scheduling over every process of every live VM),
writes it once under the run's queue prefix, and registers it with a follower
thread. The follower lists each active job's results prefix every ``poll_interval``
seconds, resolves the futures of each new batch, and, when every call of a job is
resolved, deletes the job's objects. A batch claimed by an agent whose heartbeat went
stale, and, once no live agent remains, a batch nobody claimed, fail with
BridgeError rather than hanging. No credentials travel in the job: agents use their
own storage config.
"""

from __future__ import annotations

import json
import logging
import pickle
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import cloudpickle

from ephemera.errors import NoSuchBucketError, NoSuchKeyError
from lithops_bridge.backends.standalone import keys
from lithops_bridge.errors import BridgeError
from lithops_bridge.futures import apply_outcome
from lithops_bridge.job import Job, guided_chunks

log = logging.getLogger("lithops_bridge.standalone")
STALE_AFTER = 30.0  # seconds without a heartbeat after which a VM's claims are given up
CHECK_EVERY = 5.0  # seconds between checks of the claims of unfinished batches


@dataclass
class _Active:
    """A submitted job the follower is watching."""

    job: Job  # the job (payload already in storage)
    futures: list  # one per call
    batches: list[tuple[int, int]]  # call index ranges
    seen: set[int] = field(default_factory=set)  # batches already resolved
    checked: float = field(default_factory=time.monotonic)  # last stale-claim check


class StandaloneBackend:
    name = "standalone"

    def __init__(self, config: dict, storage_config: dict):
        from lithops_bridge.storage import Storage

        self.settings = dict(config["standalone"])
        self.run_id = self.settings["run_id"]
        self.storage = Storage(storage_config=storage_config)
        self.store, self.bucket = self.storage.ephemera_storage, self.storage.bucket
        default_poll = 0.02 if self.store.traits.same_host else 0.5
        self.poll = float(self.settings.get("poll_interval") or default_poll)
        self._active: dict[str, _Active] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- capacity -----------------------------------------------------------------------
    @staticmethod
    def is_live(hb: dict, now: datetime) -> bool:
        """A heartbeat of a running agent, fresh enough to count on."""
        if hb.get("state") == "stopped":
            return False
        try:
            age = (now - datetime.fromisoformat(hb["at"])).total_seconds()
        except (KeyError, TypeError, ValueError):
            return False
        return age <= STALE_AFTER

    def heartbeats(self) -> list[dict]:
        """The presence object of every task server of the run (see vm_service)."""
        out = []
        try:
            infos = list(self.store.list(self.bucket, keys.servers_prefix(self.run_id)))
        except NoSuchBucketError:
            return out
        for info in infos:
            try:
                out.append(json.loads(self.store.get(self.bucket, info.key)))
            except (NoSuchKeyError, ValueError):
                continue
        return out

    def live_heartbeats(self) -> list[dict]:
        now = datetime.now(timezone.utc)
        return [hb for hb in self.heartbeats() if self.is_live(hb, now)]

    def slots(self, live: list[dict]) -> int:
        """Processes across the run's live VMs (at least 1)."""
        per_vm = int(self.settings["worker_processes"])
        total = sum(min(per_vm, int(hb.get("worker_processes") or per_vm)) for hb in live)
        return max(1, total)

    def capacity(self) -> int:
        """Calls the run's live VMs run at once."""
        return self.slots(self.live_heartbeats())

    # --- submit ---------------------------------------------------------------------------
    def submit(self, job: Job, futures: list) -> None:
        live = self.live_heartbeats()
        if not live:
            raise BridgeError(f"no agent of run '{self.run_id}' is alive (no heartbeat in the last {STALE_AFTER:g} s "
                              f"in bucket '{self.bucket}'), so job {job.job_key} cannot run: check standalone.run_id, "
                              "and that the run is applied and its VMs are up")
        batches = guided_chunks(job.total_calls, self.slots(live), job.chunksize)
        workers = sorted({int(hb["worker"]) for hb in live if str(hb.get("worker", "")).isdigit()})
        payload = {"job_key": job.job_key, "func": job.func, "modules": job.modules, "data": job.data, "extra_env": job.extra_env,
                   "timeout": job.timeout, "batches": batches, "worker_processes": int(self.settings["worker_processes"]),
                   "use_gpu": bool(self.settings.get("use_gpu")),
                   "hard_dismantle_timeout": float(self.settings["hard_dismantle_timeout"]),
                   "workers": workers, "submitted_at": datetime.now(timezone.utc).isoformat()}
        with self._lock:
            self._active[job.job_key] = _Active(job, futures, batches)
        for f in futures:
            f._set_invoked()
        try:
            self.store.put(self.bucket, keys.queue_key(self.run_id, job.job_key), cloudpickle.dumps(payload))
        except Exception as exc:
            with self._lock:
                self._active.pop(job.job_key, None)
            raise BridgeError(f"cannot submit job {job.job_key} to run {self.run_id}: {exc}") from exc
        self._ensure_follower()
        self._wake.set()

    def _ensure_follower(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._follow, name=f"lithops-bridge-follow-{self.run_id}", daemon=True)
            self._thread.start()

    # --- follow -----------------------------------------------------------------------------
    def _follow(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                active = list(self._active.values())
            if not active:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            progressed = False
            for act in active:
                try:
                    progressed |= self._poll_job(act)
                except Exception as exc:  # noqa: BLE001 - storage hiccup: retry next round
                    log.warning("following job %s: %s", act.job.job_key, exc)
            if not progressed:
                time.sleep(self.poll)

    def _poll_job(self, act: _Active) -> bool:
        run, jk = self.run_id, act.job.job_key
        try:
            infos = list(self.store.list(self.bucket, keys.results_prefix(run, jk)))
        except NoSuchBucketError:
            infos = []
        new = [i for i in infos if keys.batch_of(i.key) not in act.seen]
        for info in new:
            batch = keys.batch_of(info.key)
            outcomes = pickle.loads(self.store.get(self.bucket, info.key))
            start, end = act.batches[batch]
            for fut, outcome in zip(act.futures[start:end], outcomes):
                if not fut._finished():
                    apply_outcome(fut, outcome)
            act.seen.add(batch)
        if len(act.seen) == len(act.batches):
            self._finish(act)
        elif time.monotonic() - act.checked > CHECK_EVERY:
            act.checked = time.monotonic()
            self._check_stale_claims(act)
        return bool(new)

    def _check_stale_claims(self, act: _Active) -> None:
        """Fail the batches no live agent will ever answer."""
        beats = {str(hb.get("worker")): hb for hb in self.heartbeats()}
        now = datetime.now(timezone.utc)
        anyone_live = any(self.is_live(hb, now) for hb in beats.values())
        for batch, (start, end) in enumerate(act.batches):
            if batch in act.seen:
                continue
            try:
                claim = json.loads(self.store.get(self.bucket, keys.claim_key(self.run_id, act.job.job_key, batch)))
            except (NoSuchKeyError, NoSuchBucketError, ValueError):
                claim = None
            if claim is None:
                if anyone_live:
                    continue
                err = BridgeError(f"no agent of run {self.run_id} is alive any more to run calls {start}-{end - 1} "
                                  f"of job {act.job.job_key}: the run's VMs stopped")
            elif self.is_live(beats.get(str(claim.get("worker"))) or {}, now):
                continue
            else:
                err = BridgeError(f"the agent of VM {claim.get('worker')} of run {self.run_id} stopped while running "
                                  f"calls {start}-{end - 1} of job {act.job.job_key}")
            for fut in act.futures[start:end]:
                if not fut._finished():
                    fut._set_error(err, None)
            act.seen.add(batch)
        if len(act.seen) == len(act.batches):
            self._finish(act)

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
                self.store.delete(self.bucket, keys.queue_key(self.run_id, jk))
                for info in list(self.store.list(self.bucket, keys.job_prefix(self.run_id, jk))):
                    self.store.delete(self.bucket, info.key)
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
