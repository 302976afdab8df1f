"""Hooks of the throwaway ``scratch`` stack the tests register: Lithops drives each of its
"VMs" through a made-up ``scratch_vm`` backend at the address its outputs give."""

from __future__ import annotations

from ephemera.stack.hooks import StackHooks, VMAddress
from ephemera.stack.spec import StackSpec


class ScratchHooks(StackHooks):
    def lithops_backend(self, spec: StackSpec, config, vm: VMAddress, engine_region: str | None = None) -> tuple[str, dict]:
        return "scratch_vm", {"instance_id": vm.id, "address": vm.address}
