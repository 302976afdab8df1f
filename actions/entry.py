"""The deployed entry points: what the platforms call, in front of the actions.

``__main__.py`` of the OpenWhisk zip is ``from ephemera.actions.entry import
openwhisk_main as main``; that of the Code Engine function source imports
:func:`code_engine_main`. Both:

- run the action the *deployment* fixed: OpenWhisk's action name (``__OW_ACTION_NAME``,
  set by the platform) or the function's ``EPHEMERA_ACTION`` variable. A request naming
  an action (``ephemera_action``) is refused, never followed;
- refuse an ``apply`` or ``destroy`` request that is not a recognisable event (a
  delivery of a known format, or one naming ``ephemera_kind``, e.g. ``manual``):
  it gets an error and creates nothing;
- ignore an alarm fired outside its ``start_date``/``stop_date`` window when the
  deployment put the window in the event (Code Engine cron subscriptions have none).

On Code Engine the bound config comes only from the ``EPHEMERA_CONFIG_JSON`` variable
(the ``ephemera-config`` secret): a request carrying ``config`` or ``config_file`` is
refused. The result is wrapped as the function interface wants it: ``statusCode``
(200, or 4xx/5xx for an error result), a JSON ``Content-Type`` and the result as
``body``; the time limit is ``EPHEMERA_ACTION_TIMEOUT`` seconds (the function's
``--maxexecutiontime``), which the actions budget their work by.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from typing import Any, Mapping

from ephemera.actionkit import ReasonCode, ignored, time_limit
from ephemera.config import ACTIONS
from ephemera.errors import ConfigError, EphemeraError, EventError, ParamError
from ephemera.timeutil import now_utc, parse_time
from ephemera.triggers.cloud_events import is_code_engine_ping, ping_data
from ephemera.triggers.events import is_recognised_event, parse_event
from ephemera.triggers.marker_scan import SCAN_PARAM

log = logging.getLogger("ephemera.entry")
ACTION_PARAM = "ephemera_action"  # a request may not choose the action
NOT_BEFORE, NOT_AFTER = "ephemera_not_before", "ephemera_not_after"  # an alarm's window, where the platform has none
EVENT_ACTIONS = ("apply", "destroy")  # actions that act on an event: they need a recognisable one
CONFIG_ENV = "EPHEMERA_CONFIG_JSON"  # Code Engine: the bound config (from the ephemera-config secret)
ACTION_ENV = "EPHEMERA_ACTION"  # Code Engine: the action this function runs
TIMEOUT_ENV = "EPHEMERA_ACTION_TIMEOUT"  # Code Engine: the function's time limit, in seconds
REQUEST_CONFIG_PARAMS = ("config", "config_file")
# error code -> HTTP status of a Code Engine function result (anything else: 500)
STATUS = {"EVENT_INVALID": 400, "PARAM_INVALID": 400, "RUN_NOT_FOUND": 404, "STATE_CONFLICT": 409}


def _error(exc: EphemeraError) -> dict:
    return {"error": exc.to_dict()}


def _deployed(name: str) -> str:
    if name not in ACTIONS:
        raise ConfigError("action", f"'{name}' is not an Ephemera action", f"deploy it as one of {', '.join(ACTIONS)}")
    return name


def _check_request(action: str, params: dict) -> None:
    if ACTION_PARAM in params:
        raise ParamError(ACTION_PARAM, f"the action is fixed by the deployment (this one runs '{action}')",
                         "invoke the deployed action you mean instead")
    if action in EVENT_ACTIONS and params.get(SCAN_PARAM) is None and not is_recognised_event(params):
        raise EventError("<params>", f"are not a recognisable event for '{action}'",
                         "send a trigger's event, or name the kind, e.g. ephemera_kind: manual")


def _outside_window(params: dict) -> dict | None:
    """The ignored result of an alarm fired outside the window its deployment gave it."""
    if params.get(NOT_BEFORE) is None and params.get(NOT_AFTER) is None:
        return None
    event = parse_event(params)
    when = event.time or now_utc()
    start, stop = parse_time(NOT_BEFORE, params.get(NOT_BEFORE)), parse_time(NOT_AFTER, params.get(NOT_AFTER))
    if (start and when < start) or (stop and when > stop):
        return ignored(ReasonCode.OUTSIDE_SCHEDULE, f"the alarm fired at {when.isoformat()}, outside its window "
                       f"[{start.isoformat() if start else '-'}, {stop.isoformat() if stop else '-'}]", trigger=event.trigger)
    return None


def invoke(action: str, params: Any) -> dict:
    """Run the deployed ``action`` on a request's params; never raises."""
    try:
        if not isinstance(params, dict):
            raise EventError("<params>", f"expected a JSON object, got {type(params).__name__}", "invoke the action with a JSON object")
        _check_request(_deployed(action), params)
        skipped = _outside_window(params)
        if skipped is not None:
            return {"ok": True, **skipped}
    except EphemeraError as exc:
        log.warning("%s: request refused: %s", action, exc.message)
        return _error(exc)
    return importlib.import_module(f"ephemera.actions.{action}").main(params)


def openwhisk_main(params: dict) -> dict:
    """The OpenWhisk action: the action named by the platform, with the package's bound config."""
    name = os.environ.get("__OW_ACTION_NAME", "")
    if isinstance(params, dict):
        # OpenWhisk >= 2.0 adds the fire request's HTTP headers (``__ow_headers``) to
        # trigger events: plumbing, and possibly credentials, never part of the event
        params = {k: v for k, v in params.items() if not k.startswith("__ow_")}
    return invoke(name.rstrip("/").rpartition("/")[2], params)


def code_engine_config(environ: Mapping[str, str]) -> dict:
    """The bound config of a Code Engine function or job; ConfigError when it is missing or not JSON."""
    raw = environ.get(CONFIG_ENV)
    if not raw:
        raise ConfigError(CONFIG_ENV, "is not set", "deploy with `ephemera deploy code-engine` (it binds the ephemera-config secret)")
    try:
        config = json.loads(raw)
    except ValueError:
        raise ConfigError(CONFIG_ENV, "is not JSON", "re-create the ephemera-config secret with `ephemera deploy code-engine`") from None
    if not isinstance(config, dict):
        raise ConfigError(CONFIG_ENV, f"expected a JSON object, got {type(config).__name__}", "re-create the ephemera-config secret")
    return config


def code_engine_timeout(environ: Mapping[str, str], default: float) -> float:
    try:
        return float(environ.get(TIMEOUT_ENV) or default)
    except ValueError:
        return default


def code_engine_params(args: dict, environ: Mapping[str, str]) -> dict:
    """A function request's params for the action: a cron event as delivered, any other
    request without its HTTP plumbing; plus the bound config. Raises on an override."""
    if is_code_engine_ping(args):
        params = dict(args)
        data = ping_data(args)
        for key in (NOT_BEFORE, NOT_AFTER):  # the window travels in the subscription's data
            if key in data:
                params[key] = data[key]
    else:
        params = {k: v for k, v in args.items() if not k.startswith("__ce_")}
    present = [k for k in REQUEST_CONFIG_PARAMS if k in params]
    if present:
        raise ParamError(present[0], "a request may not carry a config", f"the function's config is its {CONFIG_ENV} secret")
    params["config"] = code_engine_config(environ)
    return params


def status_code(result: dict) -> int:
    """The HTTP status of an action result: 200, or 4xx/5xx for an error result."""
    error = result.get("error")
    if not error:
        return 200
    code = error.get("code") if isinstance(error, dict) else None
    if code in STATUS:
        return STATUS[code]
    return 503 if isinstance(error, dict) and error.get("retryable") else 500


def code_engine_main(args: dict) -> dict:
    """The Code Engine function: ``EPHEMERA_ACTION`` on a cron event or a direct request."""
    env = os.environ
    action = env.get(ACTION_ENV, "")
    try:
        if not isinstance(args, dict):
            raise EventError("<params>", f"expected a JSON object, got {type(args).__name__}", "send a JSON object")
        params = code_engine_params(args, env)
    except EphemeraError as exc:
        log.warning("%s: request refused: %s", action, exc.message)
        result = _error(exc)
    else:
        with time_limit(code_engine_timeout(env, 60.0)):
            result = invoke(action, params)
    return {"statusCode": status_code(result), "headers": {"Content-Type": "application/json"}, "body": result}
