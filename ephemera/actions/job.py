"""Entry point of the Code Engine job that runs an action for a subscription's event.

Every event of a deployment reaches a job, never a function: COS subscriptions can
only start apps and jobs, and cron subscriptions start jobs too, so that their data
carries no credential (a job has no HTTP endpoint: a job run is submitted only by the
platform's subscriptions or by an IAM principal with rights on the project).

Code Engine starts the job with the event JSON in ``CE_DATA`` and its type in
``CE_TYPE``: for a COS write the object key is read from ``CE_DATA.key``
(``CE_SUBJECT`` where present); for a cron ping (``dev.knative.sources.ping``)
``CE_DATA`` is the subscription's data and ``CE_TIME``/``CE_SOURCE`` say when and which
subscription fired, handed to the action as the ping it is (the fire time names the
alarm, so a retried job instance is the same event). The bound
config comes from the ``EPHEMERA_CONFIG_JSON`` variable of the ``ephemera-config``
secret; ``EPHEMERA_ACTION`` names the action (default ``destroy``), and
``EPHEMERA_RULE_PARAMS`` (JSON) the params of the rule the job serves, merged under
the event's as everywhere else. ``EPHEMERA_ACTION_TIMEOUT`` is the job's
``--maxexecutiontime``, which the action budgets its work by.

Exit codes: Code Engine re-runs a job instance that exits non-zero (``--retrylimit``),
so the job exits 1 only when a retry could help (an error result marked
``retryable``: a throttled or unreachable API, a busy workspace). An event it ignores,
one it rejects as malformed, a bad config and a failure a retry would repeat all exit
0; the result printed on stdout says which.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Mapping

from ephemera.actionkit import time_limit
from ephemera.actions.entry import code_engine_config, code_engine_timeout, invoke
from ephemera.errors import EphemeraError, ParamError
from ephemera.events.cloud_events import PING_TYPE, event_from_environment

RULE_PARAMS_ENV = "EPHEMERA_RULE_PARAMS"
DEFAULT_TIMEOUT = 600.0  # the deploy's default --maxexecutiontime of the job


def rule_params(env: Mapping[str, str], redeploy: str = "ephemera deploy code-engine") -> dict:
    """The params a deployed per-rule entry point carries in ``EPHEMERA_RULE_PARAMS`` (a JSON
    object; ParamError naming ``redeploy`` otherwise)."""
    raw = env.get(RULE_PARAMS_ENV)
    if not raw:
        return {}
    try:
        params = json.loads(raw)
    except ValueError:
        params = None
    if not isinstance(params, dict):
        raise ParamError(RULE_PARAMS_ENV, "is not a JSON object", f"re-deploy with `{redeploy}`")
    return params


def run(environ: Mapping[str, str] | None = None) -> tuple[int, dict]:
    env = os.environ if environ is None else environ
    try:
        event = event_from_environment(env)  # fails early, naming the field, on a bad delivery
        params = {**rule_params(env), **json.loads(env["CE_DATA"])}
        if env.get("CE_TYPE") == PING_TYPE:
            # the action reads the ping as a function would have got it: fire time and source in its headers
            params["__ce_headers"] = {
                "ce-type": PING_TYPE,
                "ce-time": env.get("CE_TIME", ""),
                "ce-source": env.get("CE_SOURCE", ""),
            }
        elif event.kind == "object_write":
            # the body may name its object only through CE_SUBJECT: hand the action what was parsed
            params.setdefault("bucket", event.bucket)
            params.setdefault("key", event.key)
        params["config"] = code_engine_config(env)
    except EphemeraError as exc:
        return 0, {"error": exc.to_dict()}  # a retry would be refused the same way
    with time_limit(code_engine_timeout(env, DEFAULT_TIMEOUT)):
        result = invoke(env.get("EPHEMERA_ACTION", "destroy"), params)
    error = result.get("error")
    return (1 if isinstance(error, dict) and error.get("retryable") else 0), result


def main() -> int:
    code, result = run()
    print(json.dumps(result, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
