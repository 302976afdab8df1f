"""Services that other packages run on every VM of a run, found by entry point.

The agent is Ephemera's; what else a VM serves is not. A package registers a service
class under the entry-point group ``ephemera.vm_services`` (the Lithops bridge
registers its task server there), and the agent starts every registered service when
it comes up and stops them before it exits. The core never imports a service's
package: it knows only this interface.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from typing import Callable, Protocol

from ephemera.storage.base import Storage

log = logging.getLogger(__name__)
GROUP = "ephemera.vm_services"


@dataclass(frozen=True)
class VMInfo:
    """What a service knows of the VM it runs on."""

    run_id: str  # the run the VM belongs to
    worker: int  # this VM's index in the run
    worker_count: int  # VMs in the run
    storage: Storage  # the run's storage, with the VM's own credentials
    state_bucket: str  # the run's state bucket
    worker_processes: int  # processes a service may run on this VM
    use_gpu: bool  # whether work on this VM may see the GPUs
    hard_deadline: datetime | None  # when the run ends, whatever happens
    same_host: bool  # every VM of the run shares this machine (local VMs)
    lithops_storage: dict = field(default_factory=dict)  # the storage as a Lithops section {"backend", <name>: {...}}
    request_heartbeat: Callable[[], None] | None = None  # ask the agent to heartbeat now (e.g. once warm)
    run_key: str = field(default="", repr=False)  # the run's key (ephemera.runkeys; a secret): seals what the VMs unpickle


class VMService(Protocol):
    """One service on a VM. ``start`` returns promptly (work goes to threads)."""

    name: str  # shown in logs and heartbeats

    def __init__(self, vm: VMInfo) -> None: ...

    def start(self) -> None:
        """Begin serving."""

    def status(self) -> dict:
        """Fields merged into the VM's heartbeat (e.g. ``{"pool_ready": True}``)."""

    def workload_env(self) -> dict[str, str]:
        """Environment variables the run's workload process gets from this service."""

    def stop(self) -> None:
        """Stop serving; return once its processes are gone."""


def load_services(vm: VMInfo) -> list[VMService]:
    """An instance of every registered service; one that fails to load is logged and left out."""
    services = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            services.append(ep.load()(vm))
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not stop the VM
            log.error("VM service '%s' (%s) could not be loaded: %s: %s", ep.name, ep.value, type(exc).__name__, exc)
    return services
