"""The Ephemera config: the :class:`Config` value class and the core's sections.

Every section is declared once as a pydantic model: the core's in
:mod:`ephemera.config.sections` (with :mod:`~ephemera.config.operator`'s ``cost``,
``notify`` and ``budget``, and :mod:`~ephemera.config.deploy_targets`' ``code_engine`` and
``openwhisk``), each storage backend's and engine's in its folder. The composition
root assembles them into one model and parses a raw config into a :class:`Config`
(:mod:`ephemera.assembly`: ``load_config``, ``validate``, the JSON Schema, README's key
table). This package imports no plugin: below the composition root, code takes a
parsed :class:`Config`.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from ephemera.config.budget import BudgetSection
from ephemera.config.operator import CostSection, NotifySection
from ephemera.config.schema import secret_paths, section_name
from ephemera.config.fields import WORKSPACE_NAME_FIX, is_workspace_name
from ephemera.config.sections import (
    ACTIONS,
    TRIGGER_KINDS,
    EngineSection,
    RuleEntry,
    SecuritySection,
    StorageSection,
    TimeoutsSection,
    TriggerEntry,
    WorkloadSection,
    WorkspaceSection,
)
from ephemera.errors import ConfigError
from ephemera.home import ephemera_home
from ephemera.sections import check_url

REDACTED = "********"
S = TypeVar("S", bound=BaseModel)


class Config:
    """A validated config, read through its models: ``config.workspace.name``,
    ``config.timeouts.hard``; a plugin's (or a deploy target's) own section is
    ``config.section(S3Section)``. ``config.model`` is the whole validated root model."""

    def __init__(self, model: BaseModel, source: str = "<defaults>"):
        self.model = model  # the validated root model (assembled from the registries at run time)
        self.source = source  # the file it came from, or <dict> / <defaults>

    @property
    def _root(self) -> Any:
        return self.model  # the root model's sections are not static attributes: each property below types its own

    @property
    def storage(self) -> StorageSection:
        return self._root.storage

    @property
    def engine(self) -> EngineSection:
        return self._root.engine

    @property
    def workspace(self) -> WorkspaceSection:
        return self._root.workspace

    @property
    def workload(self) -> WorkloadSection:
        return self._root.workload

    @property
    def timeouts(self) -> TimeoutsSection:
        return self._root.timeouts

    @property
    def security(self) -> SecuritySection:
        return self._root.security

    @property
    def cost(self) -> CostSection:
        return self._root.cost

    @property
    def notify(self) -> NotifySection:
        return self._root.notify

    @property
    def budget(self) -> BudgetSection:
        return self._root.budget

    @property
    def triggers(self) -> list[TriggerEntry]:
        return self._root.triggers

    @property
    def rules(self) -> list[RuleEntry]:
        return self._root.rules

    def section(self, model: type[S]) -> S:
        """The validated section a plugin declared with ``model`` (e.g. ``config.section(S3Section)``).

        Raises LookupError when no registered plugin declares ``model``: a programming
        error (the plugin is not in its registry), not a user's."""
        value = getattr(self.model, section_name(type(self.model), model))
        assert isinstance(value, model)
        return value

    @property
    def state_bucket(self) -> str:
        return self.storage.bucket

    @property
    def output_bucket(self) -> str:
        return self.workload.output_bucket or self.state_bucket

    @cached_property
    def home(self) -> Path:
        """The Ephemera home (created on first use)."""
        return ephemera_home(self._root.home)

    def _secret_paths(self) -> list[tuple[str, str]]:
        return secret_paths(type(self.model))

    def to_dict(self, redact: bool = True) -> dict:
        """The config as plain data (what an action gets); secrets replaced by a fixed mask unless redact=False."""
        data = self.model.model_dump(mode="json")
        if redact:
            for section, key in self._secret_paths():
                if data.get(section, {}).get(key):
                    data[section][key] = REDACTED
        return data

    def secret_values(self) -> list[str]:
        """Every secret value set in this config, for log and result scrubbing."""
        values = [getattr(getattr(self.model, section), key) for section, key in self._secret_paths()]
        return [str(v) for value in values if value for v in (value.values() if isinstance(value, dict) else [value])]


__all__ = [
    "ACTIONS",
    "REDACTED",
    "TRIGGER_KINDS",
    "WORKSPACE_NAME_FIX",
    "Config",
    "ConfigError",
    "check_url",
    "is_workspace_name",
]
