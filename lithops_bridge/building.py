"""How the executor turns a call into a job: it builds the :class:`~lithops_bridge.job.Job`
(function and modules serialized once, inputs checked against ``lithops.data_limit`` as the backend pickles them per batch) and
its futures, partitions object inputs, and submits the job to the compute backend, or,
when its inputs are futures (chained maps, reducers), from a background thread once
those futures are done.
"""

from __future__ import annotations

import inspect
import threading
import time
import traceback
from typing import Any, Callable

from lithops_bridge.futures import ResponseFuture
from lithops_bridge.iterdata import bind, bound_signature, call_data, merge_extra_args
from lithops_bridge.job import Job, serialize_function
from lithops_bridge.modules import module_data
from lithops_bridge.modules import resolve as resolve_modules
from lithops_bridge.partitioner import create_partitions
from lithops_bridge.runner import UPSTREAM_ERROR
from lithops_bridge.waiting import Group

_NOT_CHAINED = (str, bytes, bytearray, dict, range, set, frozenset)  # iterdata forms that are never futures


def _chained_futures(iterdata: Any) -> tuple[list[ResponseFuture] | None, Any]:
    """``(futures, iterdata)``: the futures when ``iterdata`` chains a job (a FuturesList,
    a list or tuple of futures, or any other iterable of them), else ``None`` and the
    iterdata to use (an iterator is read once here, so it comes back as a list only if
    it was made of futures)."""
    if isinstance(iterdata, (list, tuple)):
        items = list(iterdata)
    elif isinstance(iterdata, _NOT_CHAINED) or not hasattr(iterdata, "__iter__"):
        return None, iterdata
    else:
        items = list(iterdata)
        if not (items and all(isinstance(f, ResponseFuture) for f in items)):
            raise TypeError(
                f"map_iterdata is a {type(iterdata).__name__} that does not yield futures: Lithops passes "
                "it whole as the single argument of one call; pass a list (or a range) of the inputs instead"
            )
    if items and all(isinstance(f, ResponseFuture) for f in items):
        return items, iterdata
    return None, iterdata


def _uses_obj(func: Callable) -> bool:
    try:
        return "obj" in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


def call_data_item(value: Any, extra_args: Any) -> Any:
    """A chained call's input: the upstream result, with extra_args merged the Lithops way."""
    return merge_extra_args([value], extra_args)[0]


class JobBuilder:
    """The job building half of :class:`~lithops_bridge.executor.FunctionExecutor`: it uses the
    executor's ``config``, ``executor_id``, ``storage_config``, ``compute_handler``,
    ``futures`` and ``total_jobs``."""

    config: dict  # the resolved Lithops config
    executor_id: str  # names the executor's jobs and futures
    storage_config: dict  # where job data and results live
    compute_handler: Any  # the compute backend the jobs are submitted to
    futures: list[ResponseFuture]  # every future the executor made
    total_jobs: int  # numbers the next job

    def _job_id(self, call_type: str) -> str:
        job_id = f"{call_type}{self.total_jobs:03d}"
        self.total_jobs += 1
        return job_id

    def _new_job(
        self,
        call_type: str,
        func: Callable,
        n: int,
        extra_env: dict | None,
        timeout: float | None,
        modules: tuple,
        chunksize: int | None = None,
    ) -> tuple[Job, list[ResponseFuture]]:
        """A job and its futures; ``modules`` is the job's ``(include_modules, exclude_modules)``."""
        if not callable(func):
            raise TypeError(f"the function to run must be callable, got {type(func).__name__}")
        timeout = timeout if timeout is not None else self.config["lithops"].get("execution_timeout")
        include, exclude = resolve_modules(self.config["lithops"], *modules)
        job = Job(
            self.executor_id,
            self._job_id(call_type),
            serialize_function(func),
            getattr(func, "__name__", type(func).__name__),
            [],
            dict(extra_env or {}),
            timeout,
            chunksize,
            self.storage_config,
            module_data(func, include, exclude),
        )
        now, group = time.time(), Group()
        futures = [ResponseFuture(self.executor_id, job.job_id, i, job.function_name, timeout, now, group) for i in range(n)]
        self.futures.extend(futures)
        return job, futures

    def _submit(self, job: Job, futures: list[ResponseFuture], datas: list[dict]) -> None:
        job.data = datas
        job.data_limit = self.config["lithops"].get("data_limit")
        if not futures:
            return
        self.compute_handler.submit(job, futures)

    def _submit_after(
        self, job: Job, futures: list[ResponseFuture], deps: list[ResponseFuture], make_data: Callable[[], list[dict]]
    ) -> None:
        """Submit ``job`` from a thread once ``deps`` are done (chained maps, reducers)."""
        for f in futures:
            f._set_invoked()

        def go() -> None:
            try:
                for d in deps:
                    d._wait()
                self._submit(job, futures, make_data())
            except BaseException as exc:  # noqa: BLE001 - the job's futures carry the failure
                for f in futures:
                    if not f._finished():
                        f._set_error(exc, traceback.format_exc())

        threading.Thread(target=go, name=f"lithops-bridge-{job.job_key}", daemon=True).start()

    def _map_job(
        self,
        call_type: str,
        func: Callable,
        iterdata: Any,
        chunksize: int | None,
        extra_args: Any,
        extra_env: dict | None,
        timeout: float | None,
        obj_chunk_size: int | None,
        obj_chunk_number: int | None,
        obj_newline: str | None,
        modules: tuple,
    ) -> tuple[list[ResponseFuture], list[int] | None]:
        parts_per_object = None
        upstream, iterdata = _chained_futures(iterdata)
        if upstream is not None:
            for f in upstream:  # consumed: a later get_result()/wait() without futures skips their outputs
                f._produce_output = False
            job, futures = self._new_job(call_type, func, len(upstream), extra_env, timeout, modules, chunksize)
            sig = bound_signature(func)

            def chained() -> list[dict]:
                out = []
                for f in upstream:
                    if f.error:
                        out.append({UPSTREAM_ERROR: f._exception})
                    else:
                        out.append(bind(sig, call_data_item(f.result(), extra_args)))
                return out

            self._submit_after(job, futures, upstream, chained)
            return futures, None
        if _uses_obj(func):
            datas, parts_per_object = create_partitions(
                self.storage_config, func, iterdata, extra_args, obj_chunk_size, obj_chunk_number, obj_newline
            )
        else:
            datas = call_data(func, iterdata, extra_args)
        job, futures = self._new_job(call_type, func, len(datas), extra_env, timeout, modules, chunksize)
        self._submit(job, futures, datas)
        return futures, parts_per_object
