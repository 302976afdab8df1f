"""The storage of a Lithops storage section: what ``lithops_bridge.Storage`` is built on.

A Lithops storage config (``{"backend": name, name: {...}}``) becomes an Ephemera config
(:func:`ephemera.storage.lithops.from_lithops`), is parsed like any other, and the
backend it names is built. Its own module, so a deployed action's cold start (which
never opens Lithops storage) does not import the mapping.
"""

from __future__ import annotations

from ephemera.assembly.load import load_config
from ephemera.storage import get_storage
from ephemera.storage.base import Storage
from ephemera.storage.lithops import from_lithops


def open_lithops_storage(storage_config: dict) -> tuple[Storage, str]:
    """(Storage, bucket) for a Lithops storage config: the backend Lithops code writes to."""
    cfg, bucket = from_lithops(storage_config)
    # storage only: the engine's settings checks (a terraform binary on PATH, ...) are not its business
    return get_storage(load_config(cfg, engine_checks=False)), bucket
