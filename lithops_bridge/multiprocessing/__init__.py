"""``lithops_bridge.multiprocessing``: Lithops' ``lithops.multiprocessing`` over the bridge.

``import lithops_bridge.multiprocessing as mp`` in place of ``import
lithops.multiprocessing as mp`` (or of the stdlib's ``multiprocessing``): ``Pool``
(``map``, ``map_async``, ``starmap``, ``starmap_async``, ``imap``,
``imap_unordered``, ``apply``, ``apply_async``, ``close``/``join``/``terminate``,
context manager, ``initializer``) and ``Process`` run their tasks as calls on the
configured backend (localhost processes, or the VMs of an Ephemera run);
``config.set_parameter(config.LITHOPS_CONFIG, {...})`` chooses it. ``cpu_count()``
is the number of processes the backend runs at once. Lithops' Redis-backed
primitives (queues, pipes, managers, shared values, locks) are not provided.
"""

from __future__ import annotations

from lithops_bridge.multiprocessing import config
from lithops_bridge.multiprocessing.pool import ApplyResult, AsyncResult, IMapIterator, MapResult, Pool
from lithops_bridge.multiprocessing.process import Process, current_process, new_executor

CloudProcess = Process  # Lithops' name


def cpu_count() -> int:
    """Processes the configured backend runs at once (local processes, or all of a run's VMs')."""
    fexec = new_executor()
    try:
        return fexec.compute_handler.capacity()
    finally:
        fexec.compute_handler.close()


__all__ = [
    "ApplyResult",
    "AsyncResult",
    "CloudProcess",
    "IMapIterator",
    "MapResult",
    "Pool",
    "Process",
    "config",
    "cpu_count",
    "current_process",
]
