"""The composition root: where a raw config is parsed and the plugins it names are built.

Below this floor nothing parses a config: ``ephemera.config`` is the :class:`Config`
value class and the core's sections, the storage backends and the engines take a
parsed ``Config`` (or their own typed settings). Here they meet:

- :mod:`~ephemera.assembly.model`: the whole config model, assembled from the core's
  sections and every registered plugin's (``root_model``), its JSON Schema and the
  secret values of a raw config that may not validate;
- :mod:`~ephemera.assembly.load`: ``load_config`` / ``validate`` (a file, a dict or the
  default locations, then the chosen backend's and engine's checks);
- :mod:`~ephemera.assembly.docs`: README's table of config keys;
- :mod:`~ephemera.assembly.lithops`: the storage of a Lithops storage section (what
  ``lithops_bridge.Storage`` is built on);
- the builders below, which take a config *source* (a ``Config``, a mapping, a path)
  where the boundary has not parsed one yet.

The boundary (the CLI, ``Context``, the action kit, the VM agent, the Lithops bridge's
storage) calls in here; the floors under it never do.
"""

from __future__ import annotations

import os
from typing import Mapping

from ephemera import engines, storage
from ephemera.assembly.load import find_config_file, load_config, validate
from ephemera.assembly.model import json_schema, raw_secret_values, root_model
from ephemera.config import Config
from ephemera.engines.base import WorkspaceEngine
from ephemera.runkeys import bind_signing_key
from ephemera.storage.base import Storage

Source = Mapping | str | os.PathLike | Config | None  # what load_config takes


def get_storage(source: Source) -> Storage:
    """The storage backend of a config source (parsed first unless it is a ``Config``)."""
    return storage.get_storage(load_config(source))


def get_engine(source: Source) -> WorkspaceEngine:
    """The workspace engine of a config source (parsed first unless it is a ``Config``)."""
    return engines.get_engine(load_config(source))


def with_signing_key(config: Config) -> Config:
    """``config`` as a deploy binds it: with ``security.signing_key`` set."""
    return load_config(bind_signing_key(config.to_dict(redact=False), config))


__all__ = [
    "Config",
    "find_config_file",
    "get_engine",
    "get_storage",
    "json_schema",
    "load_config",
    "raw_secret_values",
    "root_model",
    "validate",
    "with_signing_key",
]
