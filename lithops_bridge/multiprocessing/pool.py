"""``Pool``: ``multiprocessing.Pool`` over a FunctionExecutor, as Lithops' ``lithops.multiprocessing.Pool``.

Every task is a call on the executor's backend (localhost processes, or the VMs of
an Ephemera run). ``map``/``starmap`` are one ``map`` job each, ``apply`` one
``call_async``; the function is serialized once per job. As in Lithops, the
``initializer`` runs before each task on the worker, and ``processes`` sizes the
backend (``worker_processes``: the local pool, or the processes per VM).

Results follow the stdlib: ``get(timeout)`` returns the value or raises the task's
exception (``TimeoutError`` after ``timeout``), ``callback``/``error_callback`` are
called once, on a thread of the pool, when every task of the result is done;
``imap`` yields in order as results arrive, ``imap_unordered`` in completion order.
``close()`` refuses new work, ``join()`` (after close or terminate) waits for the
submitted tasks, ``terminate()`` and the context manager's exit stop waiting for them
(a call already running on a worker finishes there).
"""

from __future__ import annotations

import queue
import threading
from functools import partial
from typing import Any, Callable, Iterable, Iterator

from lithops_bridge.multiprocessing import config as mp_config
from lithops_bridge.multiprocessing.process import cloud_process_wrapper, new_executor

RUN, CLOSE, TERMINATE = 0, 1, 2


class ApplyResult:
    """The pending result of ``apply_async`` (one task) or, as MapResult, of a map."""

    def __init__(self, futures: list, callback: Callable | None, error_callback: Callable | None, single: bool):
        self._futures = futures
        self._single = single  # apply: one value, not a list
        self._callback, self._error_callback = callback, error_callback
        if callback is not None or error_callback is not None:
            threading.Thread(target=self._notify, name="lithops-bridge-pool-callback", daemon=True).start()

    def _notify(self) -> None:
        for f in self._futures:
            f._wait()
        failed = next((f for f in self._futures if f.error), None)
        if failed is not None:
            if self._error_callback is not None:
                self._error_callback(failed._exception)
        elif self._callback is not None:
            self._callback(self._value())

    def _value(self) -> Any:
        values = [f.result() for f in self._futures]
        return values[0] if self._single else values

    def ready(self) -> bool:
        return all(f._finished() for f in self._futures)

    def successful(self) -> bool:
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return not any(f.error for f in self._futures)

    def wait(self, timeout: float | None = None) -> None:
        from lithops_bridge.wait import wait

        try:
            wait(self._futures, throw_except=False, timeout=timeout)
        except TimeoutError:
            pass

    def get(self, timeout: float | None = None) -> Any:
        from lithops_bridge.wait import wait

        wait(self._futures, throw_except=True, timeout=timeout)
        return self._value()


AsyncResult = ApplyResult


class MapResult(ApplyResult):
    """The pending result of ``map_async``/``starmap_async``: a list, in input order."""

    def __init__(self, futures: list, callback: Callable | None, error_callback: Callable | None):
        super().__init__(futures, callback, error_callback, single=False)


class IMapIterator:
    """Results of ``imap`` (input order) or ``imap_unordered`` (completion order) as they arrive."""

    def __init__(self, futures: list, ordered: bool):
        self._futures = futures
        self._ordered = ordered
        self._done: queue.Queue = queue.Queue()
        self._left = len(futures)
        if not ordered:
            for f in futures:
                f._add_done_callback(self._done.put)
        self._next = 0

    def __iter__(self) -> "IMapIterator":
        return self

    def __next__(self) -> Any:
        return self.next()

    def next(self, timeout: float | None = None) -> Any:
        if self._left == 0:
            raise StopIteration
        if self._ordered:
            fut = self._futures[self._next]
            self._next += 1
            if not fut._wait(timeout):
                self._next -= 1
                raise TimeoutError(f"no result within {timeout} s")
        else:
            try:
                fut = self._done.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"no result within {timeout} s") from None
        self._left -= 1
        return fut.result()


class Pool:
    """A pool of "processes" that are calls on the executor's backend."""

    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable | None = None,
        initargs: Iterable = (),
        maxtasksperchild: int | None = None,
        context: Any = None,
    ):
        if processes is not None and processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._initializer, self._initargs = initializer, tuple(initargs or ())
        self._maxtasksperchild = maxtasksperchild  # accepted: every task is a fresh call already
        self._executor = new_executor(**({"worker_processes": processes} if processes else {}))
        self._processes = processes or self._executor.compute_handler.capacity()
        self._state = RUN
        self._results: list[ApplyResult] = []  # what join() waits for
        self._lock = threading.Lock()

    def _check_running(self) -> None:
        if self._state != RUN:
            raise ValueError("Pool not running")

    def _wrapped(self, func: Callable, op: str) -> Callable:
        name = f"{self._executor.executor_id}-{getattr(func, '__name__', 'task')}"
        return partial(cloud_process_wrapper, func=func, initializer=self._initializer, initargs=self._initargs, name=name, op=op)

    def _track(self, result: ApplyResult) -> ApplyResult:
        with self._lock:
            self._results.append(result)
        return result

    def _map_futures(self, func: Callable, iterable: Iterable, chunksize: int | None, starmap: bool) -> list:
        self._check_running()
        items = [(arg,) for arg in iterable]
        if not items:
            return []
        extra_env = dict(mp_config.get_parameter(mp_config.ENV_VARS) or {})
        return list(
            self._executor.map(
                self._wrapped(func, "starmap" if starmap else "map"), items, chunksize=chunksize, extra_env=extra_env
            )
        )

    # --- the stdlib API ----------------------------------------------------------------
    def apply(self, func: Callable, args: tuple = (), kwds: dict | None = None) -> Any:
        """``func(*args, **kwds)`` as one task; its value."""
        return self.apply_async(func, args, kwds).get()

    def apply_async(
        self,
        func: Callable,
        args: tuple = (),
        kwds: dict | None = None,
        callback: Callable | None = None,
        error_callback: Callable | None = None,
    ) -> ApplyResult:
        self._check_running()
        extra_env = dict(mp_config.get_parameter(mp_config.ENV_VARS) or {})
        fut = self._executor.call_async(
            self._wrapped(func, "apply"), ({"args": tuple(args), "kwargs": dict(kwds or {})},), extra_env=extra_env
        )
        return self._track(ApplyResult([fut], callback, error_callback, single=True))

    def map(self, func: Callable, iterable: Iterable, chunksize: int | None = None) -> list:
        return self.map_async(func, iterable, chunksize).get()

    def map_async(
        self,
        func: Callable,
        iterable: Iterable,
        chunksize: int | None = None,
        callback: Callable | None = None,
        error_callback: Callable | None = None,
    ) -> MapResult:
        return self._track(MapResult(self._map_futures(func, iterable, chunksize, False), callback, error_callback))

    def starmap(self, func: Callable, iterable: Iterable, chunksize: int | None = None) -> list:
        """Like ``map``, each item unpacked as the arguments: ``func(*item)``."""
        return self.starmap_async(func, iterable, chunksize).get()

    def starmap_async(
        self,
        func: Callable,
        iterable: Iterable,
        chunksize: int | None = None,
        callback: Callable | None = None,
        error_callback: Callable | None = None,
    ) -> MapResult:
        return self._track(MapResult(self._map_futures(func, iterable, chunksize, True), callback, error_callback))

    def imap(self, func: Callable, iterable: Iterable, chunksize: int = 1) -> Iterator:
        return IMapIterator(self._track(MapResult(self._map_futures(func, iterable, None, False), None, None))._futures, True)

    def imap_unordered(self, func: Callable, iterable: Iterable, chunksize: int = 1) -> Iterator:
        return IMapIterator(self._track(MapResult(self._map_futures(func, iterable, None, False), None, None))._futures, False)

    def close(self) -> None:
        """No new tasks; those submitted still run."""
        if self._state == RUN:
            self._state = CLOSE

    def terminate(self) -> None:
        """No new tasks, and stop waiting for the submitted ones."""
        self._state = TERMINATE
        self._executor.compute_handler.close()

    def join(self) -> None:
        """Wait for every submitted task (after ``close()``; at once after ``terminate()``)."""
        if self._state == RUN:
            raise ValueError("Pool is still running")
        if self._state == TERMINATE:
            return
        with self._lock:
            results = list(self._results)
        for result in results:
            result.wait()

    def __enter__(self) -> "Pool":
        self._check_running()
        return self

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        self.terminate()

    def __reduce__(self):
        raise NotImplementedError("pool objects cannot be passed between processes or pickled")

    def __repr__(self) -> str:
        return f"<lithops_bridge.multiprocessing.Pool state={('RUN', 'CLOSE', 'TERMINATE')[self._state]} processes={self._processes}>"
