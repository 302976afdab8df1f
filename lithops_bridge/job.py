"""A job as the client hands it to a compute backend: the function serialized once,
the argument dict of every call, and the job's settings. The backend cuts the calls
into batches and pickles each batch's arguments as one object (:meth:`Job.pack`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import cloudpickle

from lithops_bridge.pickling import by_value_modules, dumps


@dataclass
class Job:
    """One call_async/map/reduce job."""

    executor_id: str  # the executor that created it
    job_id: str  # "A000", "M001", "R001", ...
    func: bytes  # cloudpickled function (serialized once per job)
    function_name: str  # for logs and futures
    data: list[dict]  # the argument dict of each call, in call order (pickled per batch by pack)
    extra_env: dict = field(default_factory=dict)  # environment of each call
    timeout: float | None = None  # seconds per call before TimeoutError
    chunksize: int | None = None  # calls per batch sent to a worker (None: automatic)
    storage_config: dict | None = None  # bridge storage config for injected `storage` / `obj`
    modules: dict = field(default_factory=dict)  # {relative path: source} of modules that travel (lithops_bridge.modules)
    data_limit: float | None = None  # lithops.data_limit: MiB of input data a call may have (None: no limit)

    @property
    def job_key(self) -> str:
        return f"{self.executor_id}-{self.job_id}"

    @property
    def total_calls(self) -> int:
        return len(self.data)

    def pack(self, batches: list[tuple[int, int]]) -> list[bytes]:
        """The argument dicts of each batch (index ranges) pickled as one object per
        batch. Raises ValueError naming the first call whose input is above
        ``data_limit``: a batch's pickle holds each of its calls' data, so only a batch
        over the limit has its calls measured one by one."""
        by_value = by_value_modules()  # asked once per job, not per call
        most = float(self.data_limit) * 1024 * 1024 if self.data_limit else None
        out = []
        for start, end in batches:
            blob = dumps(self.data[start:end], by_value)
            if most is not None and len(blob) > most:
                for i in range(start, end):
                    size = len(dumps(self.data[i], by_value))
                    if size > most:
                        raise ValueError(
                            f"the input data of call {i} is {size / 2**20:.1f} MiB, above lithops.data_limit "
                            f"({self.data_limit} MiB): put large inputs in storage and pass their keys, or raise data_limit"
                        )
            out.append(blob)
        return out


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


def factored_chunks(n: int, workers: int, floor: int) -> list[tuple[int, int]]:
    """Index ranges of the batches by factoring (Hummel, Schonberg and Flynn, 1992):
    rounds of ``workers`` equal batches, each round half of what is left, none smaller
    than ``floor`` calls but the last. Against equal batches of ``floor`` calls it makes
    fewer batches with the same tail: 1,000 calls over 2 workers with a floor of 125 are
    250, 250, then 125 x 4 (6 batches, not 8)."""
    out: list[tuple[int, int]] = []
    start, workers, floor = 0, max(1, workers), max(1, floor)
    while start < n:
        size = max(floor, -(-(n - start) // (2 * workers)))
        for _ in range(workers):
            if start >= n:
                break
            out.append((start, min(n, start + size)))
            start += size
    return out


def first_round(batches: list[tuple[int, int]]) -> int:
    """How many batches lead the job at the size of its first: the round its processes start with."""
    if not batches:
        return 0
    size = batches[0][1] - batches[0][0]
    return next((i for i, (a, b) in enumerate(batches) if b - a != size), len(batches))
