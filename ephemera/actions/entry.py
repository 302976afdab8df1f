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

On Code Engine (a function reached over HTTP) a request is first authenticated: it
must carry ``Authorization: Bearer <token>`` with the deployment's invoke token
(``EPHEMERA_INVOKE_TOKEN``, from the ``ephemera-invoke`` secret; compared in constant
time; :mod:`ephemera.deploy.invoke_token`). A function deployed without one refuses
everything. A request without the right token gets 401 before anything else happens:
no config is read, no engine is called, nothing is written. An authenticated request
then chooses only what :mod:`ephemera.actions.remote` allows; the bound config comes
only from the ``EPHEMERA_CONFIG_JSON`` variable (the ``ephemera-config`` secret).
Cron and COS events never reach a function: subscriptions start jobs
(:mod:`ephemera.actions.job`). The result is wrapped as the function interface wants
it: ``statusCode`` (200, or 4xx/5xx for an error result), a JSON ``Content-Type`` and
the result as ``body``; the time limit is ``EPHEMERA_ACTION_TIMEOUT`` seconds (the
function's ``--maxexecutiontime``), which the actions budget their work by.

On OpenWhisk the actions are not web actions (only the namespace's API key invokes
them or fires their triggers) and are deployed ``final`` (an invocation cannot
override the bound config); a request carrying ``config_file``, or a ``config`` that
is not the bound one (its SHA-256 is bound beside it, :mod:`ephemera.deploy.bound`),
is refused.
"""

from __future__ import annotations

import hmac
import importlib
import json
import logging
import os
from typing import Any, Mapping

from ephemera.actionkit import ReasonCode, ignored, time_limit
from ephemera.actions.remote import ACTION_PARAM, check_remote
from ephemera.assembly import load_config
from ephemera.config import ACTIONS
from ephemera.deploy.bound import DIGEST_PARAM, config_digest
from ephemera.deploy.invoke_token import bound_token, is_authorised
from ephemera.errors import AuthError, ConfigError, EphemeraError, EventError, ParamError
from ephemera.timeutil import now_utc, parse_time
from ephemera.events.formats import is_recognised_event, parse_event
from ephemera.actions.marker_scan import SCAN_PARAM

log = logging.getLogger("ephemera.entry")
NOT_BEFORE, NOT_AFTER = "ephemera_not_before", "ephemera_not_after"  # an alarm's window, where the platform has none
EVENT_ACTIONS = ("apply", "destroy")  # actions that act on an event: they need a recognisable one
CONFIG_ENV = "EPHEMERA_CONFIG_JSON"  # Code Engine: the bound config (from the ephemera-config secret)
ACTION_ENV = "EPHEMERA_ACTION"  # Code Engine: the action this function runs
TIMEOUT_ENV = "EPHEMERA_ACTION_TIMEOUT"  # Code Engine: the function's time limit, in seconds
# error code -> HTTP status of a Code Engine function result (anything else: 500)
STATUS = {"EVENT_INVALID": 400, "PARAM_INVALID": 400, "UNAUTHORIZED": 401, "RUN_NOT_FOUND": 404, "STATE_CONFLICT": 409}
JSON = {"Content-Type": "application/json"}


def _error(exc: EphemeraError) -> dict:
    return {"error": exc.to_dict()}


def _deployed(name: str) -> str:
    if name not in ACTIONS:
        raise ConfigError("action", f"'{name}' is not an Ephemera action", f"deploy it as one of {', '.join(ACTIONS)}")
    return name


def _check_request(action: str, params: dict) -> None:
    if ACTION_PARAM in params:
        raise ParamError(
            ACTION_PARAM,
            f"the action is fixed by the deployment (this one runs '{action}')",
            "invoke the deployed action you mean instead",
        )
    if action == "apply" and "run_id" in params:
        raise ParamError(
            "run_id",
            "a request may not choose the run id of a new run",
            "leave it out; pass idempotency_key to make a retry safe",
        )
    if action in EVENT_ACTIONS and params.get(SCAN_PARAM) is None and not is_recognised_event(params):
        raise EventError(
            "<params>",
            f"are not a recognisable event for '{action}'",
            "send a trigger's event, or name the kind, e.g. ephemera_kind: manual",
        )


def _outside_window(params: dict) -> dict | None:
    """The ignored result of an alarm fired outside the window its deployment gave it."""
    if params.get(NOT_BEFORE) is None and params.get(NOT_AFTER) is None:
        return None
    event = parse_event(params)
    when = event.time or now_utc()
    start, stop = parse_time(NOT_BEFORE, params.get(NOT_BEFORE)), parse_time(NOT_AFTER, params.get(NOT_AFTER))
    if (start and when < start) or (stop and when > stop):
        return ignored(
            ReasonCode.OUTSIDE_SCHEDULE,
            f"the alarm fired at {when.isoformat()}, outside its window "
            f"[{start.isoformat() if start else '-'}, {stop.isoformat() if stop else '-'}]",
            trigger=event.trigger,
        )
    return None


def invoke(action: str, params: Any) -> dict:
    """Run the deployed ``action`` on a request's params; never raises."""
    try:
        if not isinstance(params, dict):
            raise EventError(
                "<params>", f"expected a JSON object, got {type(params).__name__}", "invoke the action with a JSON object"
            )
        _check_request(_deployed(action), params)
        skipped = _outside_window(params)
        if skipped is not None:
            return {"ok": True, **skipped}
    except EphemeraError as exc:
        log.warning("%s: request refused: %s", action, exc.message)
        return _error(exc)
    return importlib.import_module(f"ephemera.actions.{action}").main(params)


def _check_bound_config(params: dict) -> None:
    """Refuse ``config_file`` and any ``config`` that is not the one the deployment bound."""
    if "config_file" in params:
        raise ParamError(
            "config_file", "a request may not name a config file", "the action's config is the one its package binds"
        )
    config, digest = params.get("config"), params.get(DIGEST_PARAM)
    if not isinstance(config, dict) or not isinstance(digest, str):
        raise ConfigError(
            "config", f"the package binds no config with its {DIGEST_PARAM}", "deploy with functions-create.sh (it binds both)"
        )
    if not hmac.compare_digest(config_digest(config), digest):
        raise ParamError(
            "config",
            "is not the config this deployment bound",
            "never pass a config with an invocation; re-deploy with functions-create.sh to change it",
        )


def openwhisk_main(params: dict) -> dict:
    """The OpenWhisk action: the action named by the platform, with the package's bound config."""
    name = os.environ.get("__OW_ACTION_NAME", "")
    if isinstance(params, dict):
        # OpenWhisk >= 2.0 adds the fire request's HTTP headers (``__ow_headers``) to
        # trigger events: plumbing, and possibly credentials, never part of the event
        params = {k: v for k, v in params.items() if not k.startswith("__ow_")}
        try:
            _check_bound_config(params)
        except EphemeraError as exc:
            log.warning("%s: request refused: %s", name, exc.message)
            return _error(exc)
        params.pop(DIGEST_PARAM)
    return invoke(name.rstrip("/").rpartition("/")[2], params)


def code_engine_config(environ: Mapping[str, str]) -> dict:
    """The bound config of a Code Engine function or job; ConfigError when it is missing or not JSON."""
    raw = environ.get(CONFIG_ENV)
    if not raw:
        raise ConfigError(
            CONFIG_ENV, "is not set", "deploy with `ephemera deploy code-engine` (it binds the ephemera-config secret)"
        )
    try:
        config = json.loads(raw)
    except ValueError:
        raise ConfigError(
            CONFIG_ENV, "is not JSON", "re-create the ephemera-config secret with `ephemera deploy code-engine`"
        ) from None
    if not isinstance(config, dict):
        raise ConfigError(
            CONFIG_ENV, f"expected a JSON object, got {type(config).__name__}", "re-create the ephemera-config secret"
        )
    return config


def code_engine_timeout(environ: Mapping[str, str], default: float) -> float:
    try:
        return float(environ.get(TIMEOUT_ENV) or default)
    except ValueError:
        return default


def code_engine_params(action: str, args: dict, config: dict) -> dict:
    """An authenticated function request's params for the action: the request without its
    HTTP plumbing (``__ce_*``), checked against what a remote request may choose, plus the
    bound config. Raises ParamError naming the first key it may not set."""
    params = {k: v for k, v in args.items() if not k.startswith("__ce_")}
    check_remote(action, params, load_config(config, engine_checks=False))  # the bound config, validated as the action will
    return {**params, "config": config}


def status_code(result: dict) -> int:
    """The HTTP status of an action result: 200, or 4xx/5xx for an error result."""
    error = result.get("error")
    if not error:
        return 200
    code = error.get("code") if isinstance(error, dict) else None
    if code in STATUS:
        return STATUS[code]
    return 503 if isinstance(error, dict) and error.get("retryable") else 500


def _authenticate(args: Any, env: Mapping[str, str]) -> None:
    """AuthError unless the request carries the deployment's token in its Authorization header;
    ConfigError when the function has no token bound (it then refuses everything)."""
    expected = bound_token(env)
    headers = args.get("__ce_headers") if isinstance(args, dict) else None
    if not is_authorised(headers, expected):
        raise AuthError()


def code_engine_main(args: dict) -> dict:
    """The Code Engine function: ``EPHEMERA_ACTION`` on an authenticated direct request."""
    env = os.environ
    action = env.get(ACTION_ENV, "")
    headers = dict(JSON)
    try:
        _authenticate(args, env)  # before anything else: no config read, no engine, no write
        if not isinstance(args, dict):
            raise EventError("<params>", f"expected a JSON object, got {type(args).__name__}", "send a JSON object")
        params = code_engine_params(_deployed(action), args, code_engine_config(env))
    except EphemeraError as exc:
        log.warning("%s: request refused: %s", action, exc.message)  # AuthError's message names nothing presented
        if isinstance(exc, AuthError):
            headers["WWW-Authenticate"] = "Bearer"
        result = _error(exc)
    else:
        with time_limit(code_engine_timeout(env, 60.0)):
            result = invoke(action, params)
    return {"statusCode": status_code(result), "headers": headers, "body": result}
