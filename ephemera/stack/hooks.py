"""What a stack may do beyond its declarations: the base class of a stack's ``hooks``.

A stack's ``stack.toml`` names a subclass (``hooks = "module:Class"``) when the
defaults below do not fit: the local stack's hooks write each VM's boot document,
find and stop orphan agents and delete the run files its VMs leave
(:mod:`ephemera.vm.local_stack`); a cloud stack's hooks say which Lithops backend
drives one of its VMs (:mod:`ephemera.stack.ibm_vpc_gpu`). The Terraform engine calls
the first group, ``ephemera lithops-config`` the second; neither knows any stack.

One capability is optional and checked explicitly (``isinstance``): a stack whose hooks
are also a :class:`PreemptionView` tells the reaper which of a run's instances the
cloud reclaimed (:mod:`ephemera.lifecycle.preemption`). A stack whose hooks are a
:class:`PowerStateView` tells a cloud image build (:mod:`ephemera.bundle.cloudimage`)
whether its builder VM has powered off.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ephemera.stack.spec import StackSpec


@dataclass(frozen=True)
class VMAddress:
    worker: int  # the VM's worker index
    id: str  # its instance id (or resource id)
    address: str | None  # the address it is reached at from its network (None: the stack gives none)
    public_address: str | None = None  # its public address, when the stack makes one


def output_value(outputs: dict, name: str | None) -> Any:
    """An output's value, whether the record holds the value or Terraform's ``{"value": ...}``."""
    value = outputs.get(name) if name else None
    return value.get("value") if isinstance(value, dict) and "value" in value else value


class StackHooks:
    """The defaults: a stack whose VMs are cloud instances the engine knows nothing more about."""

    # --- the engine that applies on this machine -----------------------------------------------
    def engine_variables(self, spec: StackSpec, runs_dir: Path, workspace: str, run_id: str, values: dict) -> dict:
        """Variables the engine sets for an apply (``set_by = "engine"``), after writing what they point at."""
        return {}

    def plan_variables(self, spec: StackSpec, scratch: Path) -> dict:
        """Placeholders for the engine's variables in a plan, which must write and start nothing."""
        return {}

    def orphan_resources(self, runs_dir: Path, workspace: str, state: dict) -> list[str]:
        """Resources of the workspace the Terraform state does not name (an apply killed before saving it)."""
        return []

    def stop_orphans(self, runs_dir: Path, workspace: str, state: dict) -> list[str]:
        """Stop those resources; one line per resource saying what happened."""
        return []

    def cleanup(self, runs_dir: Path, workspace: str) -> None:
        """Delete what the workspace's VMs left on this machine, once destroyed."""

    # --- the VMs, as ``ephemera lithops-config`` sees them ------------------------------------
    def vm_addresses(self, spec: StackSpec, outputs: dict) -> list[VMAddress]:
        """The run's VMs from its outputs, as the spec's ``[vms]`` names them, in worker order."""
        vms = spec.vms
        if vms.list:
            items = [i for i in output_value(outputs, vms.list) or [] if isinstance(i, dict)]
            return [
                VMAddress(int(i.get("worker", 0)), str(i.get("id", "")), i.get("address"), i.get("public_address"))
                for i in sorted(items, key=lambda i: int(i.get("worker", 0)))
            ]
        ids = output_value(outputs, vms.ids) or []
        addresses = output_value(outputs, vms.addresses) or []
        public = output_value(outputs, vms.public_addresses) or []
        return [
            VMAddress(w, str(iid), str(ip), public[w] if w < len(public) else None)
            for w, (iid, ip) in enumerate(zip(ids, addresses))
        ]

    def lithops_backend(
        self, spec: StackSpec, config: Any, vm: VMAddress, engine_region: str | None = None
    ) -> tuple[str, dict] | None:
        """(Lithops compute backend, its section) that drives ``vm`` in consume mode; None: the stack has none.
        ``engine_region`` is the region the engine builds VMs in, when it knows one."""
        return None


class PreemptionView(ABC):
    """Optional capability of a stack's hooks: the engine's view of a run's instances.

    The reaper asks it, besides the VMs' own heartbeats, whether the cloud reclaimed a
    VM. It must report only what the cloud says happened (a spot reclaim), never guess
    from an instance it cannot see: an error reading the view is raised, and the
    reaper counts it as no preemption (one failed status call never starts a recovery)."""

    @abstractmethod
    def preempted_workers(self, spec: StackSpec, config: Any, run_id: str, outputs: dict, since: str) -> dict[int, str]:
        """Worker -> why, for each VM of the run's current apply (started at ``since``, ISO)
        that the cloud reclaimed; ``outputs`` are the apply's Terraform outputs."""


class PowerStateView(ABC):
    """Optional capability of a stack's hooks: the cloud's word on one instance's power state,
    read while an image build waits for its builder VM to power itself off."""

    @abstractmethod
    def instance_power_state(self, config: Any, instance_id: str, region: str, endpoint: str | None = None) -> str:
        """The instance's state as the cloud names it ("running", "stopped", ...); ``endpoint``
        overrides the region's API endpoint. Raise, never guess, when the cloud cannot be read."""
