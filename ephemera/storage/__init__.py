"""Object storage: one interface, one folder per backend, an explicit registry.

Adding a backend is a folder ``ephemera/storage/<name>/`` (its ``spec.py`` subclasses
:class:`~ephemera.storage.spec.StorageBackendSpec`) and one line in :data:`BACKENDS`.
``get_storage(config)`` builds the backend a parsed config names; cloud SDKs are imported
only inside their backend module, when that backend is built.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ephemera.plugins import load_spec, registered
from ephemera.storage.base import ObjectInfo, Storage
from ephemera.storage.spec import StorageBackendSpec

if TYPE_CHECKING:
    from ephemera.config import Config

# registry name -> "module:Spec class"; the spec modules import no SDK
BACKENDS: dict[str, str] = {
    "localhost": "ephemera.storage.localhost.spec:LocalhostSpec",
    "aws_s3": "ephemera.storage.aws_s3.spec:AwsS3Spec",
    "ibm_cos": "ephemera.storage.ibm_cos.spec:IBMCOSSpec",
}
DEFAULT_BACKEND = "localhost"  # the value of storage.backend when the config names none


def storage_spec(name: str, field: str = "storage.backend") -> StorageBackendSpec:
    """The spec of a registered backend; ConfigError naming ``field`` for an unknown name."""
    return registered(BACKENDS, name, field, "storage backend")


def storage_specs() -> list[StorageBackendSpec]:
    """Every registered backend's spec, in registry order."""
    return [load_spec(path) for path in BACKENDS.values()]


def backend_for_scheme(scheme: str) -> str:
    """The backend an object URL scheme names (``s3://`` is ``aws_s3``); unknown schemes as given."""
    for spec in storage_specs():
        if scheme in spec.url_schemes:
            return spec.name
    return scheme


def get_storage(config: Config) -> Storage:
    """The storage backend of a parsed :class:`~ephemera.config.Config`
    (:func:`ephemera.assembly.get_storage` parses a config source first)."""
    return storage_spec(config.storage.backend).build(config)


def put_json(storage: Storage, bucket: str, key: str, obj: Any) -> ObjectInfo:
    return storage.put(bucket, key, json.dumps(obj, indent=1, sort_keys=True, default=str).encode())


def get_json(storage: Storage, bucket: str, key: str) -> Any:
    return json.loads(storage.get(bucket, key))


__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "ObjectInfo",
    "Storage",
    "StorageBackendSpec",
    "backend_for_scheme",
    "get_storage",
    "get_json",
    "put_json",
    "storage_spec",
    "storage_specs",
]
