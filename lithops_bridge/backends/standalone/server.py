"""VM side of the standalone backend: every agent of a run serves its job queue.

The server lists ``lithops.jobs/<run_id>/queue/`` (when a client rings, and at least
every poll interval; the end of a batch alone claims from the last listing), loads each
new job once, and
claims batches by owning their slot 0 (``put_if_absent``, see ``slots``: no batch
runs twice while its claimer lives, whatever the number of VMs) while it has free
processes, at most ``worker_processes`` of the job at a time; each VM tries its share
of the job's first round, then the later batches from its own evenly spread place
(``claim_order``). Once a claim finds its batch taken, one listing of the job's slots
names the other batches taken, instead of a failed claim each (on IBM COS, every claim
waits ``claim_settle``); a claim that lands after the client finished the job and
deleted it (this VM loaded it just before) is deleted again, and nothing of that job
runs again. When the presence of another VM of the run goes silent, the
server takes over that VM's claims with attempts left (``reclaim``) by owning their
next slot, so a lost VM's calls still run. Batches run in a warm pool (forkserver:
safe next to the agent's threads); each finished batch's results are written into
the slot after its claim, retried with backoff; a claim superseded meanwhile drops
its results (``results``). If storage keeps refusing them, failure outcomes are written instead,
and if even those fail the claim is released so the batch runs again. A batch
running longer than the job's ``hard_dismantle_timeout`` is killed with its pool:
its calls fail with TimeoutError, and the other batches killed with it fail with
BridgeError (they are not run again: a call never runs twice on a live VM). While
the agent stops, a dying pool uploads nothing: the client sees the stopped
presence. GPUs stay visible to calls only when the job says ``use_gpu``.

Nothing is unpickled unless sealed with the run key (``seal``): a queue object whose
seal fails (planted by another run's VM, before or during this run, or copied from
elsewhere) is logged once and ignored; a slot whose seal fails ends its batch.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from typing import Any
from collections import OrderedDict, deque
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import cloudpickle

from ephemera.errors import NoSuchBucketError, NoSuchKeyError
from lithops_bridge.backends.standalone import keys, presence, reclaim, slots, wake
from lithops_bridge.backends.standalone.results import UPLOAD_DELAYS, ResultWriter, failure_outcomes
from lithops_bridge.backends.standalone.seal import RunSeal, SealError, parse_key
from lithops_bridge.backends.standalone.order import claim_order
from lithops_bridge.backends.standalone.watchdog import Watchdog
from lithops_bridge.errors import BridgeError
from lithops_bridge.lifeline import exit_with_owner, exit_with_parent
from lithops_bridge.runner import Batch, run_batch
from lithops_bridge.threads import thread_caps

log = logging.getLogger("lithops_bridge.agent.server")


def _init_task_process(env: dict, agent_pid: int) -> None:
    os.environ.update(env)
    exit_with_parent(os.getppid())
    exit_with_owner(agent_pid, kill_parent=True)  # a killed agent takes its forkserver and pool with it


class TaskServer(ResultWriter, Watchdog):
    """Claims and runs the batches of the run's standalone jobs on this VM."""

    def __init__(
        self,
        store,
        bucket: str,
        run_id: str,
        worker: int,
        worker_processes: int,
        task_env: dict,
        run_key: str,
        cloud: bool = False,
    ):
        self.store, self.bucket, self.run_id, self.worker = store, bucket, run_id, worker
        self.seal = RunSeal(parse_key(run_key, "run_key"), run_id)
        self.size = max(1, int(worker_processes))
        # environment of the task processes (nested-executor config), numeric libraries' threads shared out
        self.task_env = {**thread_caps(self.size), **task_env}
        # seconds between looks at the queue, backing off while idle (a local look is a listing: a new job waits ~10 ms)
        self.poll_min, self.poll_max = (0.25, 2.0) if cloud else (0.01, 0.02)
        self.reclaim_every = 5.0 if cloud else 0.5  # seconds between looks for a dead VM's claims
        self._last_reclaim = 0.0
        self.upload_delays = UPLOAD_DELAYS  # backoff of result uploads
        self.ready = False  # the pool has answered once (warm)
        self.stopping = threading.Event()
        # a wake-up: the loop's wait, which a client of this machine ends when it submits a job (see wake)
        if not cloud:
            wake.sweep()  # first, the bells that killed agents and clients of this user left behind
        self._bell = None if cloud else wake.open_bell(wake.server_bell(bucket, run_id, worker))
        self._wake: threading.Event | wake.Bell = self._bell or threading.Event()
        self._lock = threading.Lock()  # guards _pool
        self._inflight_lock = threading.Lock()  # guards _inflight (pool callbacks run on other threads)
        self._jobs: "OrderedDict[str, dict]" = OrderedDict()  # job_key -> payload (+ bookkeeping); loop thread only
        self._exhausted: set[str] = set()  # every batch of these jobs is claimed by someone; loop thread only
        self._refused: set[str] = set()  # queued objects whose seal failed: never loaded again; loop thread only
        self._listing: tuple[float, list[str]] | None = None  # (monotonic time, job keys) of the last queue listing
        self._released: deque = deque()  # (job_key, batch, slot) whose claim an upload gave back: claim again
        self._inflight: dict[tuple[str, int], dict] = {}  # (job_key, batch) -> {started, future, batch, limit, job, slot}
        self._pool: ProcessPoolExecutor | None = None
        self._uploads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="results")
        self.thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> "TaskServer":
        self.thread = threading.Thread(target=self._loop, name="standalone-server", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # first: the pool killed below must not report its calls as failed
        self._wake.set()
        self._kill_pool()
        self._uploads.shutdown(wait=False, cancel_futures=True)
        if self._bell is not None:
            self._bell.close()

    def warm_up(self) -> None:
        """Start the pool ahead of the first job (in the background of agent start-up)."""
        self._get_pool().submit(os.getpid).result()
        self.ready = True

    def _get_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload(["lithops_bridge.runner", "cloudpickle"])
                self._pool = ProcessPoolExecutor(
                    self.size, mp_context=ctx, initializer=_init_task_process, initargs=(self.task_env, os.getpid())
                )
            return self._pool

    def _kill_pool(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            try:
                proc.kill()
            except Exception:  # noqa: BLE001 - already gone
                pass
        pool.shutdown(wait=False, cancel_futures=True)

    def _inflight_count(self, jk: str | None = None) -> int:
        with self._inflight_lock:
            return len(self._inflight) if jk is None else sum(1 for (k, _b) in self._inflight if k == jk)

    # --- the loop -------------------------------------------------------------------------
    def _loop(self) -> None:
        delay, news = self.poll_min, True
        while not self.stopping.is_set():
            try:
                busy = self._round(news)
                self._watchdog()
            except Exception as exc:  # noqa: BLE001 - a storage hiccup must not stop the VM
                log.warning("standalone server round failed: %s", exc)
                busy = False
            delay = self.poll_min if busy else min(self.poll_max, delay * 1.5)
            self._wake.wait(delay)
            news = self._news()

    def _news(self) -> bool:
        """Whether a ring other than this server's own (a batch done) came: a client
        submitted a job, so the queue is listed now rather than at the next poll."""
        if self._bell is None:
            self._wake.clear()
            return False
        return any(hint != wake.SELF for hint in self._bell.take())

    def _queued(self, news: bool) -> list[str] | None:
        """The job keys in the queue: listed when a client rang or the last listing is a
        poll interval old; a batch's end alone reuses the last listing (on the cloud every
        listing is a paid request, and a claim of a job cleaned meanwhile is dropped, see
        ``_drop_if_cleaned``). None: no bucket."""
        if news or self._listing is None or time.monotonic() - self._listing[0] >= self.poll_min:
            try:
                found = [keys.job_key_of(i.key) for i in self.store.list(self.bucket, keys.queue_prefix(self.run_id))]
            except NoSuchBucketError:
                self._listing = None
                return None
            self._listing = (time.monotonic(), found)
        return self._listing[1]

    def _round(self, news: bool = True) -> bool:
        while self._released:
            jk, b, slot = self._released.popleft()
            if jk in self._jobs and slot == 0:  # a later slot is found again by the take-over scan
                self._jobs[jk]["_tried"].discard(b)
                self._exhausted.discard(jk)
        queued = self._queued(news)
        if queued is None:
            return False
        for jk in list(self._jobs):
            if jk not in queued:
                self._jobs.pop(jk, None)
                self._exhausted.discard(jk)
        self._refused &= set(queued)
        claimed_any = False
        for jk in queued:
            if jk in self._exhausted or jk in self._refused:
                continue
            if self._inflight_count() >= self.size:
                return True
            job = self._load(jk)
            if job is None:
                continue
            claimed_any |= self._claim_from(job)
        claimed_any |= self._take_over(queued)
        return claimed_any or bool(self._inflight_count()) or bool(set(queued) - self._exhausted - self._refused)

    def _take_over(self, queued: list[str]) -> bool:
        """Claim the batches of dead VMs (every ``reclaim_every`` seconds, while there is room)."""
        if not queued or self._inflight_count() >= self.size or time.monotonic() - self._last_reclaim < self.reclaim_every:
            return False
        self._last_reclaim = time.monotonic()
        beats = presence.read_all(self.store, self.bucket, self.run_id)
        took, fresh = False, None
        for jk in queued:
            job = self._load(jk)
            if job is None or not reclaim.suspects(beats, job.get("submitted_at")):
                continue
            if fresh is None:  # a take-over never reaches for a job cleaned up since the last listing
                fresh = set(self._queued(news=True) or [])
            if jk not in fresh:
                continue
            limit = max(1, int(job.get("worker_processes") or self.size))
            for b, slot in reclaim.orphans(
                self.store, self.bucket, self.run_id, job, (self.worker, os.getpid()), beats, job["_final"], self.seal
            ):
                if self._inflight_count() >= self.size:
                    return took
                if self._inflight_count(jk) >= limit:
                    break
                if slots.take(
                    self.store, self.bucket, keys.slot_key(self.run_id, jk, b, slot), self._claim_body(jk, b, slot), self.seal
                ):
                    log.warning(
                        "taking over calls %d-%d of job %s (attempt %d): their VM stopped answering",
                        job["batches"][b][0],
                        job["batches"][b][1] - 1,
                        jk,
                        slot + 1,
                    )
                    self._run(job, b, slot)
                    took = True
        return took

    def _load(self, jk: str) -> dict | None:
        job = self._jobs.get(jk)
        if job is None and jk not in self._refused:
            key = keys.queue_key(self.run_id, jk)
            try:
                body = self.seal.unseal(keys.JOB_KIND, key, self.store.get(self.bucket, key))
            except (NoSuchKeyError, NoSuchBucketError):
                return None
            except SealError as exc:
                self._refused.add(jk)
                self.seal.report(exc, key)
                return None
            job = cloudpickle.loads(body)  # authenticated: written with this run's key, for this key (the MAC says so)
            job["_order"] = claim_order(self.worker, list(job.get("workers") or []), job["batches"])
            job["_next"] = 0  # position in _order
            job["_tried"] = set()  # batches whose slot 0 this server tried, or found taken
            job["_retry"] = set()  # batches whose claim failed in storage: claimed again (same token) before skipped
            job["_final"] = set()  # batches known to have a result or to be abandoned
            self._jobs[jk] = job
        return job

    def _claim_from(self, job: dict) -> bool:
        jk, n, claimed = job["job_key"], len(job["batches"]), False
        limit = max(1, int(job.get("worker_processes") or self.size))
        while len(job["_tried"]) < n and self._inflight_count() < self.size:
            if self._inflight_count(jk) >= limit:
                break
            b = job["_order"][job["_next"]]
            job["_next"] = (job["_next"] + 1) % n
            if b in job["_tried"]:
                continue
            job["_tried"].add(b)
            try:
                won = slots.take(
                    self.store, self.bucket, keys.slot_key(self.run_id, jk, b, 0), self._claim_body(jk, b, 0), self.seal
                )
            except Exception:
                job["_tried"].discard(b)  # not known to be claimed: try it again next round (same token)
                job["_retry"].add(b)
                raise
            job["_retry"].discard(b)
            if won and self._drop_if_cleaned(jk, keys.slot_key(self.run_id, jk, b, 0)):
                # the slot was free only because the client had finished the job and deleted
                # its objects (this server loaded it just before): nothing of it runs again
                job["_tried"].update(range(n))
                break
            if won:
                self._run(job, b, 0)
                claimed = True
            else:  # another VM reached this batch: one listing names the others it took
                self._skip_taken(job)
        if len(job["_tried"]) >= n:
            self._exhausted.add(jk)
        return claimed

    def _skip_taken(self, job: dict) -> None:
        """Count every batch with a slot in storage as tried, but those whose claim by this
        server failed in storage: it may have landed unseen, and only its retry (with the
        same token) says whose it is."""
        taken = reclaim.listed_slots(self.store, self.bucket, self.run_id, job["job_key"])
        job["_tried"].update(b for b in taken if b not in job["_retry"])

    def _run(self, job: dict, b: int, slot: int) -> None:
        start, end = job["batches"][b]
        env = dict(job.get("extra_env") or {})
        if not job.get("use_gpu"):
            env.setdefault("CUDA_VISIBLE_DEVICES", "")
        data: list = job.get("data") or []
        aligned = len(data) == len(job["batches"])  # one argument pickle per batch
        batch = Batch(
            job["job_key"],
            job["func"],
            list(range(start, end)),
            data[b] if aligned else b"",
            env,
            job.get("timeout"),
            None,
            worker_label=f"vm-{self.worker}",
            modules=job.get("modules") or {},
        )
        self._submit(job, b, slot, batch, aligned)

    def _submit(self, job: dict, b: int, slot: int, batch: Batch, aligned: bool = True) -> None:
        entry = {
            "started": time.monotonic(),
            "batch": batch,
            "limit": job.get("hard_dismantle_timeout"),
            "job": job,
            "slot": slot,
        }
        with self._inflight_lock:
            self._inflight[(job["job_key"], b)] = entry
        if not aligned:  # its calls fail with the reason, rather than a claim no one runs
            err = f"job {job['job_key']} was written by a bridge whose job format differs from VM {self.worker}'s "
            fix = "(one argument pickle per batch): run the same ephemera version on the client and the run's VMs"
            self._complete(job["job_key"], b, failure_outcomes(batch.call_ids, BridgeError(err + fix)))
            return
        try:
            cf = self._get_pool().submit(run_batch, batch)
        except Exception as exc:  # noqa: BLE001 - a broken pool: fail this batch, fresh pool next time
            self._kill_pool()
            self._complete(job["job_key"], b, failure_outcomes(batch.call_ids, exc))
            return
        entry["future"] = cf
        cf.add_done_callback(lambda f, jk=job["job_key"], b=b: self._batch_done(jk, b, f))

    def _batch_done(self, jk: str, b: int, cf) -> None:
        if self.stopping.is_set():
            return  # the agent is stopping and killed the pool: the client sees the stopped heartbeat
        with self._inflight_lock:
            entry = self._inflight.get((jk, b))
            if entry is None or entry.get("future") is not cf:
                return  # superseded (failed by the watchdog)
        if cf.cancelled():
            return
        exc = cf.exception()
        if exc is None:
            outcomes = cf.result()
        else:
            from concurrent.futures.process import BrokenProcessPool

            if isinstance(exc, BrokenProcessPool):
                with self._lock:
                    if self._pool is not None and getattr(self._pool, "_broken", False):
                        self._pool = None  # the next batch gets a fresh pool
                exc = BrokenProcessPool(
                    f"a worker process on VM {self.worker} died while running this call "
                    "(killed, out of memory, or os._exit in the function)"
                )
            outcomes = failure_outcomes(entry["batch"].call_ids, exc)
        self._complete(jk, b, outcomes)

    def _complete(self, jk: str, b: int, outcomes: Any) -> None:
        with self._inflight_lock:
            entry = self._inflight.pop((jk, b), None)
        self._wake.set()
        if entry is None:
            return
        try:
            self._uploads.submit(self._upload, jk, b, entry["slot"], outcomes, entry["job"].get("wake"))
        except RuntimeError:  # shutting down
            pass
