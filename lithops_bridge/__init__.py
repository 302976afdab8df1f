"""Lithops-compatible FunctionExecutor and Storage: ``import lithops_bridge as lithops``.

Backends: ``localhost`` (a warm process pool, the default with no config) and
``standalone`` (consume mode on the VMs of an Ephemera run, through storage).
"""

from lithops_bridge.constants import ALL_COMPLETED, ALWAYS, ANY_COMPLETED
from lithops_bridge.executor import FunctionExecutor, LocalhostExecutor, ServerlessExecutor, StandaloneExecutor
from lithops_bridge.futures import FuturesList, ResponseFuture
from lithops_bridge.storage import Storage
from lithops_bridge.wait import get_result, wait

__version__ = "3.7.1-bridge"

__all__ = [
    "ALL_COMPLETED",
    "ALWAYS",
    "ANY_COMPLETED",
    "FunctionExecutor",
    "FuturesList",
    "LocalhostExecutor",
    "ResponseFuture",
    "ServerlessExecutor",
    "StandaloneExecutor",
    "Storage",
    "get_result",
    "wait",
]
