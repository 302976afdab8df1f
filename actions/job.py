"""Entry point of the Code Engine job that runs an action for a COS subscription event.

Code Engine starts the job with the event JSON in ``CE_DATA`` (and ``CE_TYPE``,
``CE_SUBJECT``); the bound config comes from the ``EPHEMERA_CONFIG_JSON`` variable of
the ``ephemera-config`` secret; ``EPHEMERA_ACTION`` names the action (default
``destroy``). Exit code 0 on success, 1 when the action returned an error (so that
Code Engine's job retry applies), 2 for a malformed event.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Mapping

from ephemera.errors import EventError
from ephemera.triggers.cloud_events import event_from_environment


def run(environ: Mapping[str, str] | None = None) -> tuple[int, dict]:
    env = os.environ if environ is None else environ
    try:
        event = event_from_environment(env)  # fails early, naming the field, on a bad delivery
    except EventError as exc:
        return 2, {"error": exc.to_dict()}
    params = json.loads(env["CE_DATA"])
    if event.kind == "object_write":
        # the body may name its object only through CE_SUBJECT: hand the action what was parsed
        params.setdefault("bucket", event.bucket)
        params.setdefault("key", event.key)
    if env.get("EPHEMERA_CONFIG_JSON"):
        params["config"] = json.loads(env["EPHEMERA_CONFIG_JSON"])
    action = env.get("EPHEMERA_ACTION", "destroy")
    result = importlib.import_module(f"ephemera.actions.{action}").main(params)
    return (1 if "error" in result else 0), result


def main() -> int:
    code, result = run()
    print(json.dumps(result, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
