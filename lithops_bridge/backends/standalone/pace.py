"""How fast a function's calls ran on a run's VMs, as the process that submits them saw it.

Every standalone batch costs a claim, a result, a read and deletes in storage, whatever
its calls do. A job's smallest batch is a quarter of a process's share (see
``StandaloneBackend.batches``): that bounds the tail when calls are long, and is many
batches more than short calls need. Once this process has had results of a function
(an earlier map of it: a script's loop, an iterative algorithm), its next job is cut
so that no batch is shorter than ``min_seconds`` of those calls, up to one batch per
process; a batch that short could only balance a tail shorter still. The first job of a
function, and every function whose calls are long, is cut as before.

The pace is remembered per function and run (another run may have other machines), in
this process only: it rises at once when calls get slower and halves its distance when
they get faster, so a function that was slow once keeps small batches for a while.
"""

from __future__ import annotations

import hashlib
import math
import threading
from array import array
from collections import OrderedDict
from typing import Any

from lithops_bridge.outcomes import TIMES, BatchOutcome

REMEMBERED = 256  # functions whose pace this process keeps (the least recent go first)


class Paces:
    """Seconds per call of recently run functions (thread-safe)."""

    def __init__(self, size: int = REMEMBERED):
        self._size = size
        self._lock = threading.Lock()
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def per_call(self, key: bytes) -> float | None:
        """The seconds per call of the function of ``key`` (``pace_key``), None if this
        process has not seen it run."""
        with self._lock:
            return self._seen.get(key)

    def record(self, key: bytes, outcomes: Any) -> None:
        """Learn from a batch's outcomes (a batch that did not run teaches nothing)."""
        seconds = seconds_per_call(outcomes)
        if seconds is None:
            return
        with self._lock:
            old = self._seen.pop(key, None)
            self._seen[key] = seconds if old is None else max(seconds, (old + seconds) / 2)
            while len(self._seen) > self._size:
                self._seen.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


def pace_key(func: bytes, run_id: str) -> bytes:
    """What a function's pace on a run's VMs is remembered by: a digest of the run and of
    the function's pickled bytes (another run may have other machines; taken once per job:
    a closure over a large object pickles to megabytes)."""
    digest = hashlib.blake2b(run_id.encode() + b"\0", digest_size=16)
    digest.update(func)
    return digest.digest()


def seconds_per_call(outcomes: Any) -> float | None:
    """A batch's wall time on its worker (first start to last end) per call; None if
    the outcomes carry no times."""
    if not isinstance(outcomes, BatchOutcome):
        return None
    times: "array[float]" = array("d")
    times.frombytes(outcomes.times)
    calls = len(times) // TIMES
    if not calls:
        return None
    return max(0.0, max(times[TIMES - 1 :: TIMES]) - min(times[::TIMES])) / calls


def batch_floor(per_call: float | None, share: int, floor: int, min_seconds: float) -> int:
    """The smallest batch of a job: ``floor`` calls, raised to ``min_seconds`` of calls at
    ``per_call`` seconds each (when known), never above ``share`` (one batch per process)."""
    if per_call is None or floor >= share:
        return floor
    wanted = share if per_call <= 0 else math.ceil(min_seconds / per_call)
    return max(floor, min(share, wanted))


PACES = Paces()  # this process's
