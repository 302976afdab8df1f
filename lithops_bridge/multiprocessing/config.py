"""Settings of ``lithops_bridge.multiprocessing``, as Lithops names them.

``set_parameter(LITHOPS_CONFIG, {...})`` gives the keyword arguments of the
``FunctionExecutor`` every Pool and Process creates (e.g. ``{"config": my_config}``
or ``{"backend": "localhost"}``); ``ENV_VARS`` the environment of every call.
``STREAM_STDOUT`` and ``EXPORT_EXECUTION_DETAILS`` are accepted (Lithops streams
logs through Redis; the bridge does not).
"""

from __future__ import annotations

from typing import Any

LITHOPS_CONFIG = "LITHOPS_CONFIG"  # FunctionExecutor keyword arguments
STREAM_STDOUT = "STREAM_STDOUT"  # accepted, no effect
ENV_VARS = "ENV_VARS"  # environment variables of every call
EXPORT_EXECUTION_DETAILS = "EXPORT_EXECUTION_DETAILS"  # accepted, no effect

_DEFAULTS = {LITHOPS_CONFIG: {}, STREAM_STDOUT: False, ENV_VARS: {}, EXPORT_EXECUTION_DETAILS: False}
_config: dict[str, Any] = dict(_DEFAULTS)


def update(config_dic: dict | None = None, **configurations: Any) -> None:
    _config.update(config_dic or {})
    _config.update(configurations)


def set_parameter(key: str, value: Any) -> None:
    if key not in _config:
        raise KeyError(key)
    _config[key] = value


def get_parameter(parameter: str) -> Any:
    return _config[parameter]
