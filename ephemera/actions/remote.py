"""What a remote request to a deployed function may choose.

A deployed Code Engine function is reached over HTTP; once its caller has proved it
holds the deployment's invoke token (:mod:`ephemera.deploy.invoke_token`), the
request still chooses only what the deployment lets it:

- never the action (fixed by the function), the config (the function's
  ``EPHEMERA_CONFIG_JSON`` secret), or a run id for a new run (Ephemera makes it);
- per action, only the top-level keys of :data:`ALLOWED`: ``apply`` a manual event
  (``ephemera_kind: manual``), an ``idempotency_key``, workload ``params`` whose keys
  the config lists in ``workload.remote_params``, and ``workspace`` only when it is
  the config's own; ``status`` and ``destroy`` a ``run_id`` to look at or end;
  ``reap`` nothing.

Alarms and object writes never come in this way: the deployment's cron and COS
subscriptions start jobs (:mod:`ephemera.actions.job`). Anything else is a 400
naming the key and the fix.
"""

from __future__ import annotations

from typing import Any

from ephemera.config import Config
from ephemera.errors import ParamError

ACTION_PARAM = "ephemera_action"
CONFIG_PARAMS = ("config", "config_file")
ALLOWED: dict[str, tuple[str, ...]] = {
    "apply": ("ephemera_kind", "idempotency_key", "params", "workspace"),
    "destroy": ("ephemera_kind", "run_id"),
    "status": ("run_id",),
    "reap": (),
}


def _listed(keys: tuple[str, ...]) -> str:
    return ", ".join(keys) if keys else "nothing"


def check_remote(action: str, params: dict, config: Config) -> None:
    """Raise ParamError for the first key of ``params`` (plumbing already dropped) a
    remote request to ``action`` may not set; ``config`` is the deployed one."""
    allowed = ALLOWED.get(action, ())
    for key in params:
        if key == ACTION_PARAM:
            raise ParamError(
                key,
                f"the action is fixed by the deployment (this one runs '{action}')",
                "invoke the deployed action you mean instead",
            )
        if key in CONFIG_PARAMS:
            raise ParamError(key, "a request may not carry a config", "the function's config is its EPHEMERA_CONFIG_JSON secret")
        if key == "run_id" and action == "apply":
            raise ParamError(
                key, "a remote request may not choose the run id", "leave it out; pass idempotency_key to make a retry safe"
            )
        if key not in allowed:
            raise ParamError(
                key, f"a remote request to '{action}' may not set it (it may set: {_listed(allowed)})", "leave it out"
            )
    kind = params.get("ephemera_kind")
    if kind is not None and kind != "manual":
        raise ParamError(
            "ephemera_kind",
            f"'{kind}': a remote request is a manual event (alarms and object writes come from the deployment's subscriptions)",
            "send ephemera_kind: manual",
        )
    if "params" in params:
        _check_params(params["params"], config)
    if "workspace" in params:
        own = config.workspace.name
        if params["workspace"] != own:
            raise ParamError(
                "workspace",
                f"{params['workspace']!r} is not the deployed config's workspace '{own}'",
                "leave it out: a deployment applies its own workspace",
            )


def _check_params(value: Any, config: Config) -> None:
    if not isinstance(value, dict):
        raise ParamError("params", f"expected an object, got {type(value).__name__}", "pass workload parameters as a JSON object")
    allowed = list(config.workload.remote_params)
    for key in value:
        if key not in allowed:
            raise ParamError(
                f"params.{key}",
                f"is not in workload.remote_params ({_listed(tuple(allowed))})",
                "list it in workload.remote_params of the deployed config, or leave it out",
            )
