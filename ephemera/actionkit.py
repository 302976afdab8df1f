"""The action contract: ``main(params) -> dict`` that never raises.

``run_action`` builds the :class:`Context` from the bound config in params
(``config`` as a dict, or ``config_file``; else the default config locations),
calls the handler, and turns any exception into ``{"error": {"code", "message"}}``.
Every result and log line passes through the config's secret scrubber.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Callable

from ephemera.context import Context
from ephemera.errors import EphemeraError
from ephemera.secrets import Scrubber, install_scrubber

log = logging.getLogger("ephemera.action")


def _ensure_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)


def context_from_params(params: dict) -> Context:
    if "config" in params and params["config"] is not None:
        return Context(params["config"])
    return Context(params.get("config_file"))


# One log filter per process: a warm container runs many activations, and each adds
# the secrets of its config instead of stacking another filter on the handlers.
_LOG_SCRUBBER = Scrubber()


def run_action(name: str, params: dict, handler: Callable[[Context, dict], dict]) -> dict:
    _ensure_logging()
    scrubber = Scrubber(_param_secrets(params))
    _LOG_SCRUBBER.add(scrubber.secrets)
    install_scrubber(_LOG_SCRUBBER)
    try:
        if not isinstance(params, dict):
            raise EphemeraError(f"action '{name}' expects a JSON object of parameters")
        ctx = context_from_params(params)
        scrubber = ctx.scrubber
        _LOG_SCRUBBER.add(scrubber.secrets)
        result = handler(ctx, params)
        return scrubber.scrub_obj({"ok": True, **result})
    except EphemeraError as exc:
        log.warning("%s: %s", name, exc.message)
        return scrubber.scrub_obj({"error": exc.to_dict()})
    except Exception as exc:  # noqa: BLE001 - the contract: an action never raises
        log.error("%s crashed:\n%s", name, scrubber.scrub(traceback.format_exc()))
        return scrubber.scrub_obj({"error": {"code": "INTERNAL_ERROR", "message": f"{type(exc).__name__}: {exc}", "retryable": False}})


def _param_secrets(params) -> list[str]:
    """Secrets visible before the config validates (so even a config error is scrubbed)."""
    from ephemera.config import raw_secret_values

    return raw_secret_values(params.get("config") if isinstance(params, dict) else None)
