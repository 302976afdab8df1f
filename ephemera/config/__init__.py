"""Loading and validating the Ephemera config.

The config is one YAML file (or a dict), found the way Lithops finds its own:
``EPHEMERA_CONFIG_FILE``, then ``./.ephemera.yaml``, then ``~/.ephemera/config``. With
none of those, every default applies (localhost storage, the local Terraform stack).

Every section is declared once as a pydantic model: the core's in
:mod:`ephemera.config.sections`, each storage backend's and engine's in its folder,
assembled by :mod:`ephemera.config.schema` from the registries. From that one
declaration come validation, defaults, secret masking, the JSON Schema (``ephemera
config --schema``) and README's key table (:mod:`ephemera.config.docs`).

A config is validated completely before anything is created: an unknown key, a wrong
type, a bad cron string or a missing credential raises :class:`ConfigError` naming the
dotted key and the fix; then the chosen backend and engine check their settings. The
loaded :class:`Config` is a new structure; the caller's dict is never mutated.
"""

from __future__ import annotations

import copy
import os
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ephemera.config.messages import config_error
from ephemera.config.paths import ca_file, workload_paths
from ephemera.config.operator import CostSection, NotifySection
from ephemera.config.schema import json_schema, raw_secret_values, root_model, secret_paths, section_name
from ephemera.config.sections import (ACTIONS, TRIGGER_KINDS, WORKSPACE_NAME_FIX, EngineSection, RuleEntry, SecuritySection,
                                      StorageSection, TimeoutsSection, TriggerEntry, WorkloadSection, WorkspaceSection,
                                      is_workspace_name)
from ephemera.errors import ConfigError
from ephemera.plainjson import check_plain
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
        from ephemera.home import ephemera_home

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


def validate(raw: Mapping | None, source: str = "<dict>", *, engine_checks: bool = True) -> Config:
    """Validate a raw mapping and return a :class:`Config`; raises ConfigError.

    ``engine_checks=False`` skips the engine's settings checks (a VM's config: the VM
    never drives the engine, and need not have its stack or binary)."""
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError("<top>", f"expected a mapping, got {type(raw).__name__}", "the config is a YAML mapping")
    check_plain(raw, ConfigError)
    model = root_model()
    try:
        typed = model.model_validate(copy.deepcopy(dict(raw)))
    except ValidationError as exc:
        raise config_error(exc, model) from None
    from ephemera.config.triggers import validate_rules, validate_triggers

    config = Config(typed, source)
    validate_triggers(config.triggers, config.state_bucket)
    validate_rules(config.rules, {t.name for t in config.triggers})
    workload_paths(config)
    config.notify.smtp_ca_file = ca_file(config)
    _check_backends(config, engine_checks)
    return config


def _check_backends(config: Config, engine_checks: bool = True) -> None:
    """The chosen storage backend and engine check their settings (no SDK is imported)."""
    from ephemera.engines import engine_spec
    from ephemera.storage import storage_spec

    storage_spec(config.storage.backend).check(config)
    if engine_checks:
        engine_spec(config.engine.backend).check(config)


def find_config_file() -> Path | None:
    """The config file Ephemera would read, in Lithops order, or None."""
    env = os.environ.get("EPHEMERA_CONFIG_FILE")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError("EPHEMERA_CONFIG_FILE", f"'{env}' is not a file", "point it at your config or unset it")
        return path
    for candidate in (Path.cwd() / ".ephemera.yaml", Path.home() / ".ephemera" / "config"):
        if candidate.is_file():
            return candidate
    return None


def load_config(source: Mapping | str | os.PathLike | Config | None = None, *, engine_checks: bool = True) -> Config:
    """Load and validate a config from a dict, a file path, or the default locations."""
    if isinstance(source, Config):
        return source
    if isinstance(source, Mapping):
        return validate(source, "<dict>", engine_checks=engine_checks)
    path = Path(source).expanduser() if source is not None else find_config_file()
    if path is None:
        return validate({}, "<defaults>", engine_checks=engine_checks)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot be read ({exc.strerror})", "check the path and permissions") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), f"is not UTF-8 text (byte {exc.start} cannot be decoded)", "save the file as UTF-8") from None
    try:
        raw = yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(str(path), "is nested too deeply", "flatten the YAML") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(str(path), f"is not valid YAML{where}", "fix the syntax") from None
    return validate(raw, str(path), engine_checks=engine_checks)


__all__ = ["ACTIONS", "REDACTED", "TRIGGER_KINDS", "WORKSPACE_NAME_FIX", "Config", "ConfigError", "check_url",
           "find_config_file", "is_workspace_name", "json_schema", "load_config", "raw_secret_values", "root_model",
           "validate"]
