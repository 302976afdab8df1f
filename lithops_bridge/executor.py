"""``FunctionExecutor``: the Lithops 3.x executor API over the bridge's backends.

The executor resolves its config (lithops_bridge.config), builds the compute backend
named there (``localhost``: a warm process pool; ``standalone``: the VMs of an
Ephemera run, through storage), turns each ``call_async``/``map``/``map_reduce``
into a :class:`~lithops_bridge.job.Job` (function and arguments serialized once) and
returns futures. Jobs whose inputs are futures (chained maps, reducers) are
submitted by a background thread once those futures are done (the job building and
submitting: :mod:`lithops_bridge.building`).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Callable

from lithops_bridge import constants as c
from lithops_bridge.backends import get_backend
from lithops_bridge.building import JobBuilder
from lithops_bridge.config import default_config, extract_storage_config, setup_logging
from lithops_bridge.futures import FuturesList, ResponseFuture
from lithops_bridge.iterdata import bind, bound_signature
from lithops_bridge.runner import UPSTREAM_ERROR
from lithops_bridge.storage import Storage
from lithops_bridge.wait import THREADPOOL_SIZE, _as_list, results_of
from lithops_bridge.wait import wait as wait_futures

log = logging.getLogger("lithops_bridge")


class FunctionExecutor(JobBuilder):
    """Lithops' FunctionExecutor: ``mode``, ``config``, ``config_file``, ``backend``,
    ``storage``, ``monitoring``, ``log_level``; other kwargs override the compute
    backend's section (e.g. ``worker_processes``)."""

    def __init__(
        self,
        mode: str | None = None,
        config: dict | None = None,
        config_file: str | None = None,
        backend: str | None = None,
        storage: str | None = None,
        monitoring: str | None = None,
        log_level: Any = False,
        **kwargs: Any,
    ):
        overwrite = {
            "lithops": {"mode": mode, "backend": backend, "storage": storage, "monitoring": monitoring},
            "backend": dict(kwargs),
        }
        self.config = default_config(config_file=config_file, config_data=config, config_overwrite=overwrite)
        setup_logging(log_level if log_level else self.config["lithops"].get("log_level") if log_level is False else None)
        self.executor_id = uuid.uuid4().hex[:6] + "-" + uuid.uuid4().hex[:2]
        self.backend = self.config["lithops"]["backend"]
        self.mode = self.config["lithops"]["mode"]
        self.storage_config = extract_storage_config(self.config)
        self.futures: list[ResponseFuture] = []
        self.total_jobs = 0
        self.last_call: str | None = None
        self._storage = None
        compute = c.STANDALONE if self.mode == c.STANDALONE else c.LOCALHOST
        self.compute_handler = get_backend(compute, self.config, self.storage_config)
        log.debug("FunctionExecutor %s created (%s, storage %s)", self.executor_id, self.backend, self.storage_config["backend"])

    # --- context manager ---------------------------------------------------------------
    def __enter__(self) -> "FunctionExecutor":
        return self

    def __exit__(self, exc_type, exc_value, tb) -> None:
        self.compute_handler.close()

    @property
    def storage(self):
        """A ``lithops_bridge.Storage`` on the executor's storage backend."""
        if self._storage is None:
            self._storage = Storage(storage_config=self.storage_config)
        return self._storage

    # --- the Lithops API -------------------------------------------------------------------
    def call_async(
        self,
        func: Callable,
        data: Any,
        extra_env: dict | None = None,
        runtime_memory: int | None = None,
        timeout: float | None = None,
        include_modules: list | None = [],
        exclude_modules: list | None = [],
    ) -> ResponseFuture:
        """Run ``func`` once with ``data`` (dict: kwargs, tuple: args, else the first argument)."""
        self.last_call = "call_async"
        futures, _ = self._map_job(
            "A", func, [data], None, None, extra_env, timeout, None, None, "\n", (include_modules, exclude_modules)
        )
        return futures[0]

    def map(
        self,
        map_function: Callable,
        map_iterdata: Any,
        chunksize: int | None = None,
        extra_args: Any = None,
        extra_env: dict | None = None,
        runtime_memory: int | None = None,
        obj_chunk_size: int | None = None,
        obj_chunk_number: int | None = None,
        obj_newline: str | None = "\n",
        timeout: float | None = None,
        include_modules: list | None = [],
        exclude_modules: list | None = [],
    ) -> FuturesList:
        """One call of ``map_function`` per item of ``map_iterdata``; returns their futures."""
        self.last_call = "map"
        futures, _ = self._map_job(
            "M",
            map_function,
            map_iterdata,
            chunksize,
            extra_args,
            extra_env,
            timeout,
            obj_chunk_size,
            obj_chunk_number,
            obj_newline,
            (include_modules, exclude_modules),
        )
        return FuturesList(futures, self)

    def map_reduce(
        self,
        map_function: Callable,
        map_iterdata: Any,
        reduce_function: Callable,
        chunksize: int | None = None,
        extra_args: Any = None,
        extra_args_reduce: Any = None,
        extra_env: dict | None = None,
        map_runtime_memory: int | None = None,
        reduce_runtime_memory: int | None = None,
        timeout: float | None = None,
        obj_chunk_size: int | None = None,
        obj_chunk_number: int | None = None,
        obj_newline: str | None = "\n",
        obj_reduce_by_key: bool = False,
        spawn_reducer: int = 20,
        include_modules: list | None = [],
        exclude_modules: list | None = [],
    ) -> FuturesList:
        """Map, then reduce: the reducer's first argument is the list of map results
        (one reducer per object with ``obj_reduce_by_key``)."""
        self.last_call = "map_reduce"
        map_futures, parts = self._map_job(
            "M",
            map_function,
            map_iterdata,
            chunksize,
            extra_args,
            extra_env,
            timeout,
            obj_chunk_size,
            obj_chunk_number,
            obj_newline,
            (include_modules, exclude_modules),
        )
        if spawn_reducer != c.ALWAYS:  # Lithops: a map failure raises here
            self.wait(map_futures, return_when=spawn_reducer)
        groups = [map_futures]
        if parts is not None and obj_reduce_by_key:
            groups, start = [], 0
            for n in parts:
                groups.append(map_futures[start : start + n])
                start += n
        job, reduce_futures = self._new_job(
            "R", reduce_function, len(groups), extra_env, timeout, (include_modules, exclude_modules)
        )
        sig = bound_signature(reduce_function)

        def reduce_data() -> list[dict]:
            out = []
            for group in groups:
                failed = next((f for f in group if f.error), None)
                if failed is not None:
                    out.append({UPSTREAM_ERROR: failed._exception})
                    continue
                results = [f.result() for f in group]
                item = (results,) + (tuple(extra_args_reduce) if isinstance(extra_args_reduce, tuple) else ())
                data = bind(sig, item)
                if isinstance(extra_args_reduce, dict):
                    data.update(extra_args_reduce)
                out.append(data)
            return out

        self._submit_after(job, reduce_futures, list(map_futures), reduce_data)
        for f in map_futures:
            f._set_mapreduce()
        return FuturesList(list(map_futures) + reduce_futures, self)

    def wait(
        self,
        fs: Any = None,
        throw_except: bool = True,
        return_when: Any = c.ALL_COMPLETED,
        download_results: bool = False,
        timeout: float | None = None,
        threadpool_size: int = THREADPOOL_SIZE,
        wait_dur_sec: float | None = None,
        show_progressbar: bool = True,
    ) -> tuple[FuturesList, FuturesList]:
        """Wait for ``fs`` (default, or empty: every future of this executor, consumed ones
        included, as in Lithops); ``(done, not_done)``."""
        futures = _as_list(fs) if fs else list(self.futures)
        done, not_done = wait_futures(
            futures,
            throw_except=throw_except,
            return_when=return_when,
            download_results=download_results,
            timeout=timeout,
            futures_from_executor_wait=not fs,
        )
        return FuturesList(done, self), FuturesList(not_done, self)

    def get_result(
        self,
        fs: Any = None,
        throw_except: bool = True,
        timeout: float | None = None,
        threadpool_size: int = THREADPOOL_SIZE,
        wait_dur_sec: float | None = None,
        show_progressbar: bool = True,
    ) -> Any:
        """Results in submission order; a single value after one ``call_async``/reduce."""
        futures = _as_list(fs) if fs else [f for f in self.futures if not f._read]
        if not futures:
            return []
        done, _ = self.wait(futures, throw_except=throw_except, download_results=True, timeout=timeout)
        result = results_of(done, throw_except)
        if not fs:
            for f in done:
                if f._produce_output:
                    f._read = True
        if len(result) == 1 and self.last_call != "map":
            return result[0]
        return result

    def clean(
        self,
        fs: Any = None,
        cs: Any = None,
        clean_cloudobjects: bool = True,
        clean_fn: bool = False,
        force: bool = False,
        on_exit: bool = False,
    ) -> None:
        """Delete the executor's temporary job data (and cloudobjects ``cs`` if given)."""
        clean = getattr(self.compute_handler, "clean", None)
        if clean:
            clean({f.job_key for f in (fs or self.futures)})
        if cs:
            self.storage.delete_cloudobjects(list(cs))

    def plot(self, fs: Any = None, dst: str | None = None, figsize: tuple = (10, 6)) -> None:
        """Lithops' plots of the execution: ``<dst>_timeline.png`` and ``<dst>_histogram.png``
        (default ``./plots/<time>_...``) of the futures ``fs`` (default: all) done without
        error; nothing when none is. Needs matplotlib (the ``plotting`` extra)."""
        futures = self.futures if not fs else fs
        if isinstance(futures, ResponseFuture):
            futures = [futures]
        ready = [f for f in futures if (f.success or f.done) and not f.error]
        if not ready:
            log.debug("ExecutorID %s - no futures ready to plot", self.executor_id)
            return
        from lithops_bridge.plots import create_plots  # matplotlib, an optional extra, only when plotting

        log.info("ExecutorID %s - creating execution plots", self.executor_id)
        create_plots([f.stats for f in ready], dst, figsize)

    def dismantle(self) -> None:
        """Consume mode: the VMs belong to the Ephemera run, which destroys them."""

    def job_summary(self, cloud_objects_n: int = 0) -> list[dict]:
        return [{"job_key": f.job_key, "call_id": f.call_id, **f.stats} for f in self.futures]


class LocalhostExecutor(FunctionExecutor):
    """Lithops' LocalhostExecutor: a FunctionExecutor forced onto the localhost backend
    (and localhost storage unless ``storage`` names another)."""

    def __init__(
        self,
        config: dict | None = None,
        config_file: str | None = None,
        storage: str | None = None,
        monitoring: str | None = None,
        log_level: Any = False,
        **kwargs: Any,
    ):
        super().__init__(
            backend=c.LOCALHOST,
            config=config,
            config_file=config_file,
            storage=storage or c.LOCALHOST,
            monitoring=monitoring,
            log_level=log_level,
            **kwargs,
        )


class ServerlessExecutor(FunctionExecutor):
    """Lithops' ServerlessExecutor (``mode="serverless"``), for code written against it.
    The bridge runs no serverless backend: building one raises ConfigError naming
    ``lithops.mode`` and what runs instead (localhost, or the VMs of an Ephemera run)."""

    def __init__(
        self,
        config: dict | None = None,
        config_file: str | None = None,
        backend: str | None = None,
        storage: str | None = None,
        monitoring: str | None = None,
        log_level: Any = False,
        **kwargs: Any,
    ):
        super().__init__(
            mode=c.SERVERLESS,
            config=config,
            config_file=config_file,
            backend=backend,
            storage=storage,
            monitoring=monitoring,
            log_level=log_level,
            **kwargs,
        )


class StandaloneExecutor(FunctionExecutor):
    """Lithops' StandaloneExecutor (``mode="standalone"``): the VMs of an Ephemera run, in
    consume mode, with the config ``ephemera lithops-config RUN_ID`` writes."""

    def __init__(
        self,
        config: dict | None = None,
        config_file: str | None = None,
        backend: str | None = None,
        storage: str | None = None,
        monitoring: str | None = None,
        log_level: Any = False,
        **kwargs: Any,
    ):
        super().__init__(
            mode=c.STANDALONE,
            config=config,
            config_file=config_file,
            backend=backend,
            storage=storage,
            monitoring=monitoring,
            log_level=log_level,
            **kwargs,
        )


# a FuturesList made without an executor (by wait(), unpickled) runs its next job on a new one
FuturesList.new_executor = FunctionExecutor
