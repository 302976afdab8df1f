"""Object storage: one interface, one folder per backend, an explicit registry.

``get_storage(config)`` builds the backend the config names. Cloud SDKs are imported
only inside their backend module, when that backend is built.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

from ephemera.storage.base import ObjectInfo, Storage

# registry name -> "module:Class"; modules are imported only when chosen
BACKENDS: dict[str, str] = {
    "localhost": "ephemera.storage.localhost.backend:LocalhostStorage",
    "aws_s3": "ephemera.storage.aws_s3.backend:S3Storage",
    "ibm_cos": "ephemera.storage.ibm_cos.backend:IBMCOSStorage",
}


def get_storage(config: Any) -> Storage:
    """The storage backend of a :class:`~ephemera.config.Config` (or a config source)."""
    from ephemera.config import ConfigError, load_config

    config = load_config(config)
    name = config["storage"]["backend"]
    if name not in BACKENDS:
        raise ConfigError("storage.backend", f"unknown backend '{name}'", f"use one of {', '.join(BACKENDS)}")
    module_name, _, cls_name = BACKENDS[name].partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls.from_config(config)


def put_json(storage: Storage, bucket: str, key: str, obj: Any) -> ObjectInfo:
    return storage.put(bucket, key, json.dumps(obj, indent=1, sort_keys=True, default=str).encode())


def get_json(storage: Storage, bucket: str, key: str) -> Any:
    return json.loads(storage.get(bucket, key))


__all__ = ["BACKENDS", "ObjectInfo", "Storage", "get_storage", "get_json", "put_json"]
