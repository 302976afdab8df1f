"""The ``ibm-vpc-gpu`` stack's hooks: Lithops' ``ibm_vpc`` backend drives each of its VMs.

Lithops' standalone ``ibm_vpc`` backend in ``consume`` mode takes one existing
instance: ``instance_id``, ``floating_ip`` (the address it SSHes to: the public one
where the stack made one with ``debug_access``, else the private IP, so Lithops runs
inside the VPC), ``region`` and ``iam_api_key``. The region is the stack's ``region``
variable as configured, else the engine's (``schematics.region``), else the
variable's default in the spec.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ephemera.ibm import IBMAccount
from ephemera.stack.hooks import StackHooks, VMAddress
from ephemera.stack.spec import StackSpec

if TYPE_CHECKING:
    from ephemera.config import Config

LITHOPS_BACKEND = "ibm_vpc"
SSH_USER = "root"  # the stack's images log in as root


class IBMVPCGPUStack(StackHooks):
    """Hooks of the ``ibm-vpc-gpu`` stack (``terraform/ibm-vpc-gpu/stack.toml``)."""

    def lithops_backend(
        self, spec: StackSpec, config: Config, vm: VMAddress, engine_region: str | None = None
    ) -> tuple[str, dict]:
        region_var = spec.variables.get("region")
        region = config.workspace.variables.get("region") or engine_region or (region_var.default if region_var else None)
        return LITHOPS_BACKEND, {
            "instance_id": vm.id,
            "floating_ip": vm.public_address or vm.address,
            "region": region,
            "iam_api_key": config.section(IBMAccount).iam_api_key or "",
            "ssh_username": SSH_USER,
        }
