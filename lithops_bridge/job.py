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
    modules: dict = field(default_factory=dict)  # {relative path: source} of modules that travel (lithops_bridge.modules)

    @property
    def job_key(self) -> str:
        return f"{self.executor_id}-{self.job_id}"

    @property
    def total_calls(self) -> int:
        return len(self.data)


def serialize_function(func) -> bytes:
    """cloudpickle ``func`` (the modules it needs travel beside it: lithops_bridge.modules)."""
    return cloudpickle.dumps(func)


TAIL_SHARE = 16  # the smallest guided batch is this fraction of a worker's share of the job


def guided_chunks(n: int, workers: int, chunksize: int | None = None, min_size: int | None = None) -> list[tuple[int, int]]:
    """Index ranges of the batches: fixed ``chunksize``, or guided self-scheduling (each
    batch a share of what is left, so the tail is balanced), none smaller than
    ``min_size`` calls but the last: by default a ``TAIL_SHARE``-th of a worker's share,
    since every batch costs a round trip (a pool message, or a claim, a result and a
    listing in storage) and single-call batches at the tail of a large map cost more in
    round trips than they gain in balance (at most a 16th of a worker's time idle)."""
    if n <= 0:
        return []
    if chunksize:
        return [(i, min(i + chunksize, n)) for i in range(0, n, chunksize)]
    workers = max(1, workers)
    floor = max(1, -(-n // (TAIL_SHARE * workers)) if min_size is None else min_size)
    out, start = [], 0
    while start < n:
        size = max(floor, (n - start) // (4 * workers))
        out.append((start, min(n, start + size)))
        start += size
    return out
