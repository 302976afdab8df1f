"""The config's file paths: read from the config file's folder, checked at load.

``workload.source`` and a ``workload.requirements`` file are paths on the machine that
packs the run bundle. They are checked, and made absolute, when the config loads, unless
``workload.bundle`` names a bundle published beforehand: then nothing is packed and
the paths are not read (a deployed action has no such folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ephemera.errors import ConfigError

if TYPE_CHECKING:
    from ephemera.config import Config

DEPLOYED_FIX = "; a deployed action cannot read it: deploy with `ephemera deploy`, which publishes the bundle (workload.bundle)"


def config_dir(config: Config) -> Path:
    """The folder relative paths of the config are read from (the working directory for
    a config given as a dict)."""
    source = Path(config.source) if config.source and not config.source.startswith("<") else None
    return source.resolve().parent if source is not None else Path.cwd()


def resolve(config: Config, value: str) -> Path:
    """A path of the config, absolute."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else config_dir(config) / path


def _existing(config: Config, key: str, value: str, file_only: bool, what: str, fix: str) -> Path:
    """``value`` of ``key`` resolved; ConfigError naming the key if it is not there."""
    path = resolve(config, value)
    if not (path.is_file() if file_only else path.exists()):
        raise ConfigError(key, f"{what} '{value}' does not exist (looked at {path})", fix)
    return path


def ca_file(config: Config) -> str | None:
    """``notify.smtp_ca_file`` made absolute; ConfigError if it is not a file."""
    value = config.notify.smtp_ca_file
    if not value:
        return value
    return str(
        _existing(
            config,
            "notify.smtp_ca_file",
            value,
            True,
            "the CA file",
            "point it at the PEM bundle of your SMTP server's CA, or unset it to use the system's",
        )
    )


def workload_source(config: Config) -> Path | None:
    """``workload.source`` resolved, or None; ConfigError if it does not exist."""
    value = config.workload.source
    if not value:
        return None
    return _existing(
        config,
        "workload.source",
        value,
        False,
        "the workload source",
        "point it at the folder or file with your workload's code" + DEPLOYED_FIX,
    )


def workload_paths(config: Config) -> None:
    """The ``workload`` section's paths made absolute in place (so a copy of the config --
    the dict every action gets -- means the same files from any working directory);
    ConfigError naming the key if ``workload.source`` or a requirements file is missing."""
    workload = config.workload
    if workload.bundle:
        return
    if workload.source:
        workload.source = str(workload_source(config))
    if isinstance(workload.requirements, str):
        workload.requirements = str(
            _existing(
                config,
                "workload.requirements",
                workload.requirements,
                True,
                "the requirements file",
                "fix the path, or list the requirements" + DEPLOYED_FIX,
            )
        )
