"""The config's file paths: read from the config file's folder, checked at load.

``workload.source`` and a ``workload.requirements`` file are paths on the machine that
packs the run bundle. They are checked when the config loads, unless
``workload.bundle`` names a bundle published beforehand: then nothing is packed and
the paths are not read (a deployed action has no such folder).
"""

from __future__ import annotations

from pathlib import Path

from ephemera.errors import ConfigError

DEPLOYED_FIX = "; a deployed action cannot read it: deploy with `ephemera deploy`, which publishes the bundle (workload.bundle)"


def config_dir(config) -> Path:
    """The folder relative paths of the config are read from (the working directory for
    a config given as a dict)."""
    source = Path(config.source) if config.source and not config.source.startswith("<") else None
    return source.resolve().parent if source is not None else Path.cwd()


def resolve(config, value: str) -> Path:
    """A path of the config, absolute."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else config_dir(config) / path


def check_workload_paths(config) -> None:
    """ConfigError naming the key if ``workload.source`` or a requirements file is missing."""
    workload = config["workload"]
    if workload["bundle"]:
        return
    if workload["source"] and not resolve(config, workload["source"]).exists():
        raise ConfigError("workload.source", f"'{workload['source']}' does not exist (looked at {resolve(config, workload['source'])})",
                          "point it at the folder or file with your workload's code" + DEPLOYED_FIX)
    requirements = workload["requirements"]
    if isinstance(requirements, str) and not resolve(config, requirements).is_file():
        raise ConfigError("workload.requirements", f"the requirements file '{requirements}' does not exist "
                          f"(looked at {resolve(config, requirements)})", "fix the path, or list the requirements" + DEPLOYED_FIX)
