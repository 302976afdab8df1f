"""The Ephemera config: the :class:`Config` value class and the core's sections.

Every section is declared once as a pydantic model: the core's in
:mod:`ephemera.config.sections` (with :mod:`~ephemera.config.operator`'s ``cost`` and
``notify`` and :mod:`~ephemera.config.deploy_targets`' ``code_engine`` and
``openwhisk``), each storage backend's and engine's in its folder. The composition
root assembles them into one model and parses a raw config into a :class:`Config`
(:mod:`ephemera.assembly`: ``load_config``, ``validate``, the JSON Schema, README's key
table). This package imports no plugin: below the composition root, code takes a
parsed :class:`Config`.
"""

from __future__ import annotations

import copy
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ephemera.config.schema import secret_paths
from ephemera.config.sections import ACTIONS, TRIGGER_KINDS, WORKSPACE_NAME_FIX, is_workspace_name
from ephemera.errors import ConfigError
from ephemera.home import ephemera_home
from ephemera.sections import check_url

REDACTED = "********"


class Config:
    """A validated config. Sections are read with ``config["storage"]["bucket"]``; the typed
    model is ``config.model`` (e.g. ``config.model.timeouts.hard``)."""

    def __init__(self, data: dict, source: str = "<defaults>", model: BaseModel | None = None):
        self._data = data  # section -> validated values (plain dicts and lists)
        self.source = source  # the file it came from, or <dict> / <defaults>
        self.model = model  # the validated pydantic model (None when built from a dict directly)

    def __getitem__(self, section: str) -> Any:
        return self._data[section]

    def get(self, section: str, default: Any = None) -> Any:
        return self._data.get(section, default)

    @property
    def state_bucket(self) -> str:
        return self._data["storage"]["bucket"]

    @property
    def output_bucket(self) -> str:
        return self._data["workload"]["output_bucket"] or self.state_bucket

    @cached_property
    def home(self) -> Path:
        """The Ephemera home (created on first use)."""
        return ephemera_home(self._data.get("home"))

    def _secret_paths(self) -> list[tuple[str, str]]:
        if self.model is None:
            raise ValueError("a Config built without its model cannot name its secrets; load it with ephemera.assembly.load_config")
        return secret_paths(type(self.model))

    def to_dict(self, redact: bool = True) -> dict:
        """A deep copy of the data; secrets replaced by a fixed mask unless redact=False."""
        data = copy.deepcopy(self._data)
        for trig in data.get("triggers", []):
            trig.pop("schedule", None)
        if redact:
            for section, key in self._secret_paths():
                if data.get(section, {}).get(key):
                    data[section][key] = REDACTED
        return data

    def secret_values(self) -> list[str]:
        """Every secret value set in this config, for log and result scrubbing."""
        values = [self._data[section][key] for section, key in self._secret_paths() if self._data.get(section, {}).get(key)]
        return [str(v) for value in values for v in (value.values() if isinstance(value, dict) else [value])]


__all__ = ["ACTIONS", "REDACTED", "TRIGGER_KINDS", "WORKSPACE_NAME_FIX", "Config", "ConfigError", "check_url",
           "is_workspace_name"]
