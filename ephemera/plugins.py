"""Loading the spec of a registered plugin (a storage backend, a workspace engine).

A registry is a plain dict ``name -> "module:SpecClass"`` in the plugin kind's package
(:data:`ephemera.storage.BACKENDS`, :data:`ephemera.engines.ENGINES`). A spec module is
imported when first asked for, and its spec made once.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any, Mapping

from ephemera.errors import ConfigError


@cache
def load_spec(path: str) -> Any:
    """The spec instance a registry entry names."""
    module_name, _, cls_name = path.partition(":")
    return getattr(importlib.import_module(module_name), cls_name)()


def registered(registry: Mapping[str, str], name: object, field: str, kind: str) -> Any:
    """The spec registered as ``name``, or ConfigError naming ``field`` and the known names."""
    if not isinstance(name, str) or name not in registry:
        raise ConfigError(field, f"unknown {kind} '{name}'", f"use one of: {', '.join(registry)}")
    return load_spec(registry[name])
