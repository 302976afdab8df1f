"""Localhost backend: calls run in a warm pool of worker processes.

The pool (``worker_processes`` processes, forked) is shared by every executor of
this process with the same size and stays up between jobs, so a job pays no start-up.
A job's calls go to the pool in batches (guided self-scheduling: big batches first,
smaller ones at the tail), each batch carrying the function serialized once for the
job and its calls' arguments as one pickle; each batch's results come straight back
through the pool's pipe as one outcome (values as one pickle), with no storage round trip.
Inside a pool worker (a nested executor) the pool is private and shut down when idle,
so a worker never exits with live children. Workers exit when the process that
started the pool dies (lithops_bridge.lifeline), so a killed session leaks none.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from lithops_bridge.backends.localhost.config import load_config
from lithops_bridge.outcomes import apply_outcomes
from lithops_bridge.job import Job, guided_chunks
from lithops_bridge.lifeline import exit_with_parent
from lithops_bridge.runner import Batch, run_batch

WORKER_ENV = "LITHOPS_BRIDGE_WORKER"
_POOLS: dict[tuple[int, int], ProcessPoolExecutor] = {}  # (pid, size) -> warm pool
_LOCK = threading.Lock()


def _init_worker(parent_pid: int) -> None:
    os.environ[WORKER_ENV] = "1"
    exit_with_parent(parent_pid)


def in_worker() -> bool:
    return os.environ.get(WORKER_ENV) == "1"


def _new_pool(size: int) -> ProcessPoolExecutor:
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    return ProcessPoolExecutor(max_workers=size, mp_context=ctx, initializer=_init_worker, initargs=(os.getpid(),))


def shared_pool(size: int) -> ProcessPoolExecutor:
    """The warm pool of this process for ``size`` workers (created on first use)."""
    key = (os.getpid(), size)
    with _LOCK:
        pool = _POOLS.get(key)
        if pool is None or getattr(pool, "_broken", False) or getattr(pool, "_shutdown_thread", False):
            pool = _POOLS[key] = _new_pool(size)
        return pool


def _drop_pool(pool: ProcessPoolExecutor) -> None:
    with _LOCK:
        for key, value in list(_POOLS.items()):
            if value is pool:
                del _POOLS[key]
    pool.shutdown(wait=False, cancel_futures=True)


class LocalhostBackend:
    name = "localhost"

    def __init__(self, config: dict, storage_config: dict):
        self.settings = load_config(config)
        self.workers = self.settings["worker_processes"]
        self.storage_config = storage_config
        self.private = in_worker()
        self._pool: ProcessPoolExecutor | None = None
        self._outstanding = 0
        self._lock = threading.Lock()

    def capacity(self) -> int:
        """Calls this backend runs at once."""
        return self.workers

    def warm_up(self) -> None:
        """Start the pool now rather than on the first job."""
        if not self.private:
            pool = shared_pool(self.workers)
            pool.submit(os.getpid).result()

    def _get_pool(self) -> ProcessPoolExecutor:
        """The pool to submit to (call with ``self._lock`` held for a private pool)."""
        if not self.private:
            return shared_pool(self.workers)
        if self._pool is None:
            self._pool = _new_pool(self.workers)
        return self._pool

    def submit(self, job: Job, futures: list) -> None:
        chunks = list(guided_chunks(job.total_calls, self.workers, job.chunksize))
        blobs = job.pack(chunks)  # before anything is sent: an input above data_limit sends nothing
        for f in futures:
            f._set_invoked()
        # Take the pool and count every batch at once, before submitting any: neither a
        # fast first batch nor a previous job's last one may find the pool idle and shut
        # a private pool down under this job.
        with self._lock:
            pool = self._get_pool()
            self._outstanding += len(chunks)
        for (start, end), blob in zip(chunks, blobs):
            batch = Batch(
                job.job_key,
                job.func,
                list(range(start, end)),
                blob,
                job.extra_env,
                job.timeout,
                job.storage_config,
                worker_label="localhost",
                modules=job.modules,
            )
            try:
                cf = pool.submit(run_batch, batch)
            except (BrokenProcessPool, RuntimeError) as exc:
                self._failed(pool, futures[start:end], exc)
                continue
            cf.add_done_callback(lambda c, fs=futures[start:end], p=pool: self._batch_done(c, fs, p))

    def _batch_done(self, cf, futures: list, pool: ProcessPoolExecutor) -> None:
        try:
            outcomes = cf.result()
        except BaseException as exc:  # noqa: BLE001 - a worker died: its calls fail
            self._failed(pool, futures, exc)
            return
        apply_outcomes(futures, outcomes)
        self._release()

    def _failed(self, pool: ProcessPoolExecutor, futures: list, exc: BaseException) -> None:
        if isinstance(exc, BrokenProcessPool):
            exc = BrokenProcessPool(
                "a worker process of the localhost pool died while running this call "
                "(killed, out of memory, or os._exit in the function)"
            )
            if not self.private:
                threading.Thread(target=_drop_pool, args=(pool,), daemon=True).start()
        for fut in futures:
            if not fut._finished():
                fut._set_error(exc, None)
        self._release()

    def _release(self) -> None:
        with self._lock:
            self._outstanding -= 1
            pool = None
            if self._outstanding == 0 and self.private:
                pool, self._pool = self._pool, None
        if pool is not None:
            threading.Thread(target=pool.shutdown, kwargs={"wait": True}, daemon=True).start()

    def close(self) -> None:
        with self._lock:
            pool = None
            if self.private and self._outstanding == 0:
                pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
