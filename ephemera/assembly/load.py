"""Loading and validating the config: the one place a raw config becomes a :class:`Config`.

The config is one YAML file (or a dict), found the way Lithops finds its own:
``EPHEMERA_CONFIG_FILE``, then ``./.ephemera.yaml``, then ``~/.ephemera/config``. With
none of those, every default applies (localhost storage, the local Terraform stack).

A config is validated completely before anything is created: an unknown key, a wrong
type, a bad cron string or a missing credential raises :class:`ConfigError` naming the
dotted key and the fix; then the chosen backend and engine check their settings. The
loaded :class:`Config` is a new structure; the caller's dict is never mutated.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Mapping

import yaml
from pydantic import ValidationError

from ephemera.assembly.model import root_model
from ephemera.config import Config
from ephemera.config.messages import config_error
from ephemera.config.paths import ca_file, workload_paths
from ephemera.config.triggers import validate_rules, validate_triggers
from ephemera.engines import engine_spec
from ephemera.errors import ConfigError, ConfigFileError
from ephemera.plainjson import check_plain
from ephemera.storage import storage_spec


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
    config = Config(typed, source)
    validate_triggers(config.triggers, config.state_bucket)
    validate_rules(config.rules, {t.name for t in config.triggers})
    workload_paths(config)
    config.notify.smtp_ca_file = ca_file(config)
    _check_backends(config, engine_checks)
    return config


def _check_backends(config: Config, engine_checks: bool = True) -> None:
    """The chosen storage backend and engine check their settings (no SDK is imported)."""
    storage_spec(config.storage.backend).check(config)
    if engine_checks:
        engine_spec(config.engine.backend).check(config)


def find_config_file() -> Path | None:
    """The config file Ephemera would read, in Lithops order, or None."""
    env = os.environ.get("EPHEMERA_CONFIG_FILE")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigFileError(
                env, "is not a file (named by EPHEMERA_CONFIG_FILE)", "point EPHEMERA_CONFIG_FILE at your config, or unset it"
            )
        return path
    for candidate in (Path.cwd() / ".ephemera.yaml", Path.home() / ".ephemera" / "config"):
        if candidate.is_file():
            return candidate
    return None


def yaml_reason(exc: yaml.YAMLError) -> str:
    """The parser's own reason and where (``mapping values are not allowed here at line 3,
    column 9``), with what it was reading when it started there, if it says."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or type(exc).__name__
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    started = f" ({context} at line {context_mark.line + 1})" if context and context_mark else ""
    return f"{problem}{where}{started}"


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
        raise ConfigFileError(str(path), f"cannot be read ({exc.strerror})", "check the path and permissions") from None
    except UnicodeDecodeError as exc:
        raise ConfigFileError(
            str(path), f"is not UTF-8 text (byte {exc.start} cannot be decoded)", "save the file as UTF-8"
        ) from None
    try:
        raw = yaml.safe_load(text)
    except RecursionError:
        raise ConfigFileError(str(path), "is nested too deeply", "flatten the YAML") from None
    except yaml.YAMLError as exc:
        raise ConfigFileError(str(path), f"is not valid YAML: {yaml_reason(exc)}", "fix the syntax there") from None
    return validate(raw, str(path), engine_checks=engine_checks)
