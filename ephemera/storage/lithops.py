"""Ephemera storage config <-> Lithops storage sections.

Lithops names its storage sections as Ephemera names its backends, with other key
names (``storage_bucket`` for the bucket, ...). Each backend's spec holds its own
mapping (:class:`~ephemera.storage.spec.StorageBackendSpec`); these functions pick
the spec by name. :func:`to_lithops` gives the Lithops section of an Ephemera config
(what a run's VMs and ``ephemera lithops-config`` hand to Lithops code);
:func:`from_lithops` the Ephemera config of a Lithops storage section (what
``lithops_bridge.Storage`` is built from); :func:`complete_section` and
:func:`storage_section` are what the bridge's config loader asks.
"""

from __future__ import annotations

from typing import Any

from ephemera.errors import ConfigError
from ephemera.storage import DEFAULT_BACKEND, storage_spec

LITHOPS_FIELD = "lithops.storage"  # the Lithops key that names the storage backend


def to_lithops(config: Any) -> dict:
    """``{"backend": name, name: section}`` of a validated Ephemera config, on its state bucket."""
    name = config.storage.backend
    section = {"storage_bucket": config.state_bucket, **storage_spec(name).to_lithops(config)}
    return {"backend": name, name: section}


def from_lithops(storage_config: dict) -> tuple[dict, str]:
    """(Ephemera config dict, bucket) for a Lithops storage config ``{"backend", <name>: {...}}``."""
    name = storage_config.get("backend", DEFAULT_BACKEND)
    spec = storage_spec(name, LITHOPS_FIELD)
    section = dict(storage_config.get(name) or {})
    bucket = section.get("storage_bucket") or spec.lithops_default_bucket
    if not bucket:
        raise ConfigError(f"{name}.storage_bucket", "missing", "name the bucket Lithops data goes to")
    return {"storage": {"backend": name, "bucket": bucket}, **spec.from_lithops(section)}, bucket


def complete_section(name: str, data: dict) -> dict:
    """The storage section ``name`` of a whole Lithops config, completed with Lithops' fallbacks."""
    return storage_spec(name, LITHOPS_FIELD).complete_lithops(data)


def storage_section(name: str, section: dict) -> dict:
    """The keys of a Lithops section ``name`` that configure its storage."""
    return storage_spec(name, LITHOPS_FIELD).lithops_storage_keys(section)
