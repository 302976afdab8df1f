"""The action contract: ``main(params) -> dict`` that never raises.

``run_action`` builds the :class:`Context` from the bound config in params
(``config`` as a dict, or ``config_file``; else the default config locations),
calls the handler, and turns any exception into ``{"error": {"code", "message"}}``.
Every result and log line passes through the config's secret scrubber.

An action that deliberately does nothing says why twice: ``reason`` in words and
``reason_code``, one of :class:`ReasonCode`, for machines (and tests).
"""

from __future__ import annotations

import logging
import sys
import traceback
from enum import Enum
from typing import Callable

from ephemera.context import Context
from ephemera.errors import EphemeraError
from ephemera.secrets import Scrubber, install_scrubber

log = logging.getLogger("ephemera.action")


class ReasonCode(str, Enum):
    """Why an action result is ``ignored``, ``skipped`` or a ``duplicate`` (stable names)."""

    DUPLICATE_EVENT = "DUPLICATE_EVENT"  # the event was already handled, or is being handled
    WORKSPACE_BUSY = "WORKSPACE_BUSY"  # another open run holds the workspace
    NOT_A_MARKER = "NOT_A_MARKER"  # the written key is not a completion marker
    NO_RUN_ID = "NO_RUN_ID"  # a non-write event for destroy names no run_id
    UNKNOWN_RUN = "UNKNOWN_RUN"  # the marker's run is not in the ledger
    OUTSIDE_OUTPUT_PREFIX = "OUTSIDE_OUTPUT_PREFIX"  # the marker is not where the run's job writes it
    MARKER_GONE = "MARKER_GONE"  # the marker was deleted before it could be read
    ALREADY_ENDED = "ALREADY_ENDED"  # the run's workload already ended (its teardown is under way or failed)
    BEING_DESTROYED = "BEING_DESTROYED"  # the run is DESTROYING
    ALREADY_DESTROYED = "ALREADY_DESTROYED"  # the run is DESTROYED

    def __str__(self) -> str:
        return self.value


def ignored(code: ReasonCode, reason: str, **extra) -> dict:
    """The result of an action that deliberately did nothing."""
    return {"ignored": True, "reason_code": str(code), "reason": reason, **extra}


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
