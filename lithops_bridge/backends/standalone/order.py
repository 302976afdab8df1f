"""The order in which a VM tries a standalone job's batches: each VM its own share of the
job's first round, then the later batches from its own evenly spread place, so that the
VMs of a run rarely reach for the same batch (every failed claim costs a write, and on
IBM COS a ``claim_settle`` wait).
"""

from __future__ import annotations

from lithops_bridge.job import first_round


def start_offset(worker: int, workers: list, n: int) -> int:
    """The batch this VM claims first: VMs of the job start evenly spread over its first ``n`` batches."""
    if n <= 0:
        return 0
    if worker in workers:
        rank, count = workers.index(worker), len(workers)
    else:  # joined after the job was submitted
        rank, count = worker, max(1, len(workers))
    return rank * n // count % n


def claim_order(worker: int, workers: list, batches: list[tuple[int, int]]) -> list[int]:
    """The order in which this VM tries the job's batches: its share of the first round
    (the large batches, see ``job.factored_chunks``), then the later batches from its own
    evenly spread place, then the rest, so that VMs rarely reach for the same batch."""
    n, first = len(batches), first_round(batches)
    count = max(1, len(workers))
    start = start_offset(worker, list(workers), first)
    share = max(1, first // count)
    mine = [(start + k) % first for k in range(share)] if first else []
    rank = workers.index(worker) if worker in workers else worker
    rest = list(range(first, n))
    cut = (rank * len(rest) // count) % len(rest) if rest else 0
    order = mine + rest[cut:] + rest[:cut]
    return order + [b for b in range(first) if b not in mine]
