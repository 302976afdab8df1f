"""A job as the client hands it to a compute backend: the function serialized once,
the argument dict of every call serialized once, and the job's settings."""

from __future__ import annotations

from dataclasses import dataclass, field

import cloudpickle


@dataclass
class Job:
    """One call_async/map/reduce job."""

    executor_id: str  # the executor that created it
    job_id: str  # "A000", "M001", "R001", ...
    func: bytes  # cloudpickled function (serialized once per job)
    function_name: str  # for logs and futures
    data: list[bytes]  # cloudpickled argument dict of each call, in call order
    extra_env: dict = field(default_factory=dict)  # environment of each call
    timeout: float | None = None  # seconds per call before TimeoutError
    chunksize: int | None = None  # calls per batch sent to a worker (None: automatic)
    storage_config: dict | None = None  # bridge storage config for injected `storage` / `obj`

    @property
    def job_key(self) -> str:
        return f"{self.executor_id}-{self.job_id}"

    @property
    def total_calls(self) -> int:
        return len(self.data)


def serialize_function(func, include_modules: list | None = None) -> bytes:
    """cloudpickle ``func``; modules named in ``include_modules`` travel by value."""
    import importlib
    import sys

    registered = []
    for name in include_modules or []:
        module = sys.modules.get(name)
        if module is None:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
        try:
            cloudpickle.register_pickle_by_value(module)
            registered.append(module)
        except ValueError:
            continue
    try:
        return cloudpickle.dumps(func)
    finally:
        for module in registered:
            cloudpickle.unregister_pickle_by_value(module)


def guided_chunks(n: int, workers: int, chunksize: int | None = None) -> list[tuple[int, int]]:
    """Index ranges of the batches: fixed ``chunksize``, or guided self-scheduling
    (each batch a share of what is left, so the tail is balanced)."""
    if n <= 0:
        return []
    if chunksize:
        return [(i, min(i + chunksize, n)) for i in range(0, n, chunksize)]
    out, start, workers = [], 0, max(1, workers)
    while start < n:
        size = max(1, (n - start) // (4 * workers))
        out.append((start, min(n, start + size)))
        start += size
    return out
