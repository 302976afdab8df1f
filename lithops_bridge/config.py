"""Lithops-shaped configuration, read from where Lithops reads it.

Order: an explicit ``config_file``; a ``config`` dict; the ``LITHOPS_CONFIG`` env
(JSON); ``LITHOPS_CONFIG_FILE``; ``./.lithops_config``; ``~/.lithops/config``;
``/etc/lithops/config``. No config at all means localhost compute and localhost
storage (bucket ``lithops-bridge`` under ``<Ephemera home>/storage``, the same root
Ephemera's own localhost storage uses; ``EPHEMERA_HOME`` moves it).

Sections: ``lithops`` (backend, storage, mode, monitoring, execution_timeout,
data_limit, log_level, ...), ``localhost``, ``standalone`` and the standalone
backends ``ibm_vpc``/``aws_ec2``/``vm``, and the storage section named by
``lithops.storage``: each Ephemera storage backend states how it completes and maps
its Lithops section (:mod:`ephemera.storage.lithops`). Caller dicts are never mutated.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from pathlib import Path
from typing import Any

from ephemera.storage import DEFAULT_BACKEND
from ephemera.storage.lithops import complete_section, storage_section
from lithops_bridge import constants as c
from lithops_bridge.errors import ConfigError

log = logging.getLogger("lithops_bridge")

STANDALONE_BACKENDS = ("standalone", "ibm_vpc", "aws_ec2", "vm", "azure_vms", "gcp_compute_engine")
SERVERLESS_BACKENDS = (
    "ibm_cf",
    "code_engine",
    "knative",
    "openwhisk",
    "aws_lambda",
    "aws_batch",
    "gcp_cloudrun",
    "gcp_functions",
    "cloudrun",
    "azure_functions",
    "azure_containers",
    "aliyun_fc",
    "oracle_f",
    "k8s",
    "singularity",
)
DEFAULT_KEYS = {"monitoring": "storage", "monitoring_interval": 2, "execution_timeout": c.EXECUTION_TIMEOUT, "data_limit": 4}


def load_yaml_config(config_filename: str) -> dict:
    """The YAML file as a dict ({} when the file does not exist), as in Lithops."""
    import yaml

    try:
        with open(config_filename) as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        return {}
    except yaml.YAMLError as exc:
        raise ConfigError(str(config_filename), f"is not valid YAML ({exc})", "fix the syntax") from None
    return data or {}


def get_default_config_filename() -> str | None:
    if "LITHOPS_CONFIG_FILE" in os.environ:
        return os.environ["LITHOPS_CONFIG_FILE"]
    for candidate in (Path(".lithops_config"), Path.home() / ".lithops" / "config", Path("/etc/lithops/config")):
        if candidate.exists():
            return str(candidate.resolve())
    return None


def load_config(config_file: str | None = None) -> dict:
    """Raw config data from a file, LITHOPS_CONFIG, or the default files; localhost if none."""
    data = None
    if config_file:
        path = os.path.expanduser(config_file)
        if not os.path.exists(path):
            raise ConfigError("config_file", f"'{path}' does not exist", "pass the path of your Lithops config")
        data = load_yaml_config(path)
    elif os.environ.get("LITHOPS_CONFIG"):
        try:
            data = json.loads(os.environ["LITHOPS_CONFIG"])
        except ValueError as exc:
            raise ConfigError(
                "LITHOPS_CONFIG", f"is not valid JSON ({exc.args[0]})", "set it to a JSON object or unset it"
            ) from None
    else:
        path = get_default_config_filename()
        if path:
            if not os.path.exists(path):
                raise ConfigError("LITHOPS_CONFIG_FILE", f"'{path}' does not exist", "point it at your config or unset it")
            data = load_yaml_config(path)
    if not data:
        data = {"lithops": {"mode": c.LOCALHOST, "backend": c.LOCALHOST, "storage": DEFAULT_BACKEND}}
    if not isinstance(data, dict):
        raise ConfigError("<top>", f"expected a mapping, got {type(data).__name__}", "the Lithops config is a YAML mapping")
    return data


def mode_of(backend: str) -> str:
    if backend == c.LOCALHOST:
        return c.LOCALHOST
    if backend in STANDALONE_BACKENDS:
        return c.STANDALONE
    if backend in SERVERLESS_BACKENDS:
        raise ConfigError(
            "lithops.backend",
            f"serverless backend '{backend}' is not supported by the bridge",
            "use 'localhost', or standalone mode on the VMs of an Ephemera run",
        )
    raise ConfigError(
        "lithops.backend",
        f"unknown compute backend '{backend}'",
        f"use localhost or one of the standalone backends: {', '.join(STANDALONE_BACKENDS)}",
    )


def default_config(
    config_file: str | None = None,
    config_data: dict | None = None,
    config_overwrite: dict | None = None,
    load_storage_config: bool = True,
) -> dict:
    """The complete config: data loaded, overrides applied, mode/backend resolved, validated."""
    data = copy.deepcopy(config_data) if config_data else load_config(config_file)
    if not isinstance(data, dict):
        raise ConfigError("config", f"expected a dict, got {type(data).__name__}", "pass the Lithops config as a dict")
    overwrite = config_overwrite or {}
    data["lithops"] = dict(data.get("lithops") or {})
    data["lithops"].update({k: v for k, v in (overwrite.get("lithops") or {}).items() if v is not None})
    lit = data["lithops"]
    backend, mode = lit.get("backend"), lit.get("mode")
    if mode and mode not in c.MODES:
        raise ConfigError("lithops.mode", f"unknown mode '{mode}'", f"use one of: {', '.join(c.MODES)}")
    if mode == c.SERVERLESS:  # ServerlessExecutor, or a config asking for it: never run elsewhere silently
        if backend in SERVERLESS_BACKENDS:
            mode_of(backend)  # names lithops.backend and the backend
        raise ConfigError(
            "lithops.mode",
            "serverless mode has no backend in the bridge",
            "use LocalhostExecutor on this machine, or StandaloneExecutor on the VMs of an Ephemera run "
            "(its config: `ephemera lithops-config RUN_ID --out FILE`)",
        )
    if mode and not backend:
        section = data.get(mode) or {}
        backend = section.get("backend") or (c.LOCALHOST if mode == c.LOCALHOST else c.STANDALONE)
    elif not backend:
        backend = c.LOCALHOST
    lit["backend"], lit["mode"] = backend, mode_of(backend)
    section = dict(data.get(backend) or {})
    section.update({k: v for k, v in (overwrite.get("backend") or {}).items() if v is not None})
    data[backend] = section
    if lit["mode"] == c.STANDALONE:
        sa = dict(data.get("standalone") or {})
        # executor kwargs (worker_processes, ...) apply to the standalone section too
        sa.update({k: v for k, v in (overwrite.get("backend") or {}).items() if v is not None})
        data["standalone"] = sa
        from lithops_bridge.backends.standalone.config import load_config as standalone_settings

        standalone_settings(data)
    else:
        from lithops_bridge.backends.localhost.config import load_config as localhost_settings

        data[c.LOCALHOST] = {**dict(data.get(c.LOCALHOST) or {}), **localhost_settings(data)}
    for key, value in DEFAULT_KEYS.items():
        lit.setdefault(key, value)
    if lit["monitoring"] not in ("storage", "rabbitmq"):
        raise ConfigError("lithops.monitoring", f"unknown monitoring '{lit['monitoring']}'", "use 'storage'")
    if load_storage_config:
        data = default_storage_config(config_data=data)
    return data


def default_storage_config(config_file: str | None = None, config_data: dict | None = None, backend: str | None = None) -> dict:
    """The config with its storage section completed and checked."""

    data = copy.deepcopy(config_data) if config_data else load_config(config_file)
    data["lithops"] = dict(data.get("lithops") or {})
    if backend:
        data["lithops"]["storage"] = backend
    data["lithops"].setdefault("storage", DEFAULT_BACKEND)
    name = data["lithops"]["storage"]
    data[name] = complete_section(name, data)  # ConfigError naming lithops.storage for an unknown backend
    return data


def extract_storage_config(config: dict) -> dict:
    """``{"backend": name, name: {...}}``: what Storage(storage_config=...) takes."""
    lit = config.get("lithops") or {}
    name = lit.get("storage", DEFAULT_BACKEND)
    section = storage_section(name, dict(config.get(name) or {}))  # a section may also hold compute keys
    out = {
        "backend": name,
        name: section,
        "monitoring_interval": lit.get("monitoring_interval", DEFAULT_KEYS["monitoring_interval"]),
    }
    if lit.get("temp_prefix"):  # where cloud objects go (on a run's VMs: under the run's own prefix)
        out["temp_prefix"] = lit["temp_prefix"]
    return out


def setup_logging(level: Any) -> None:
    """``log_level`` as Lithops takes it: a name, or None/False to keep the current setup."""
    if not level:
        return
    logger = logging.getLogger("lithops_bridge")
    logger.setLevel(getattr(logging, str(level).upper(), logging.INFO))
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(name)s -- %(message)s"))
        logger.addHandler(handler)
