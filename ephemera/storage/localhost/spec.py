"""What the localhost backend tells Ephemera (see :mod:`ephemera.storage.spec`).

It needs no credentials. Its Lithops section is the bridge's own ``localhost``
storage: ``storage_bucket`` (default ``lithops-bridge``) and ``storage_root`` (a
bridge extension; default Ephemera's root, ``<home>/storage``). Lithops' ``localhost``
section also configures localhost compute (``worker_processes``, ...): only the two
storage keys configure the store.
"""

from __future__ import annotations

from ephemera.storage.localhost.config import LocalhostSection, storage_root
from ephemera.storage.spec import StorageBackendSpec, VMAccess

DEFAULT_LITHOPS_BUCKET = "lithops-bridge"  # the bridge's default when a Lithops config names no bucket
LITHOPS_STORAGE_KEYS = ("storage_bucket", "storage_root")


class LocalhostSpec(StorageBackendSpec):
    name = "localhost"
    sections = {"localhost": LocalhostSection}
    storage_class = "ephemera.storage.localhost.backend:LocalhostStorage"
    lithops_default_bucket = DEFAULT_LITHOPS_BUCKET

    def vm_access(self, config) -> VMAccess:
        """The controller's storage root, resolved: a local VM has a home of its own, so a
        root left to default (``<home>/storage``) would otherwise point into the VM's home."""
        return VMAccess(section={"root": str(storage_root(config))})

    def to_lithops(self, config) -> dict:
        return {"storage_root": str(storage_root(config))}

    def from_lithops(self, section: dict) -> dict:
        return {"localhost": {"root": section.get("storage_root")}}

    def lithops_storage_keys(self, section: dict) -> dict:
        return {k: v for k, v in section.items() if k in LITHOPS_STORAGE_KEYS}
