"""The action contract: ``main(params) -> dict`` that never raises.

``run_action`` builds the :class:`Context` from the bound config in params
(``config`` as a dict, or ``config_file``; else the default config locations),
calls the handler, and turns any exception into ``{"error": {"code", "message"}}``.
Every result and log line passes through the config's secret scrubber.

An action that deliberately does nothing says why twice: ``reason`` in words and
``reason_code``, one of :class:`ReasonCode`, for machines (and tests). A run that
failed is an error result (:func:`run_failed`), so the platform records the
activation as failed.

Each invocation has a time budget (``ctx.budget``): the deadline its platform gives
(OpenWhisk's ``__OW_DEADLINE``, a limit set with :func:`time_limit` by the Code
Engine entry point), else ``timeouts.action`` from the start of the call. Actions
leave to the reaper what would not fit in it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import sys
import time
import traceback
from enum import Enum
from typing import Callable, Iterator

from ephemera.assembly import raw_secret_values
from ephemera.context import Context
from ephemera.errors import EphemeraError, ParamError
from ephemera.model.runs import RunError, RunRecord
from ephemera.plainjson import check_plain
from ephemera.secrets import Scrubber, install_scrubber
from ephemera.timeutil import Budget

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
    WAITING_FOR_WORKSPACE = "WAITING_FOR_WORKSPACE"  # the engine found the workspace busy: the run waits (REQUESTED)
    OUTSIDE_SCHEDULE = "OUTSIDE_SCHEDULE"  # an alarm fired before its start_date or after its stop_date
    TEST_EVENT = "TEST_EVENT"  # a platform's test delivery (S3's s3:TestEvent), not an event

    def __str__(self) -> str:
        return self.value


def ignored(code: ReasonCode, reason: str, **extra) -> dict:
    """The result of an action that deliberately did nothing."""
    return {"ignored": True, "reason_code": str(code), "reason": reason, **extra}


def run_failed(run: RunRecord, error: RunError | None = None, **extra) -> dict:
    """The error result of an action whose run failed: the run's error (or ``error``),
    its id and the state it is in now (e.g. DESTROYED after a failed apply)."""
    error = error or run.error or RunError("RUN_FAILED", f"run '{run.run_id}' ended {run.state}")
    return {"error": error.summary(), "run_id": run.run_id, "state": str(run.state), **extra}


# The deadline (epoch seconds) of the current invocation when its entry point knows it.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("ephemera_action_deadline", default=None)


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Run the actions called inside with a time limit of ``seconds`` from now."""
    token = _DEADLINE.set(time.time() + float(seconds))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def invocation_budget(ctx: Context) -> Budget:
    """The time this invocation may spend: its entry point's limit, OpenWhisk's
    ``__OW_DEADLINE`` (epoch milliseconds), else ``timeouts.action`` from now."""
    deadline = _DEADLINE.get()
    if deadline is None and os.environ.get("__OW_DEADLINE"):
        try:
            deadline = int(os.environ["__OW_DEADLINE"]) / 1000.0
        except ValueError:
            deadline = None
    if deadline is not None:
        return Budget.until_epoch(deadline)
    return Budget(ctx.config.timeouts.action)


def _ensure_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)


def context_from_params(params: dict) -> Context:
    if "config" in params and params["config"] is not None:
        if not isinstance(params["config"], (dict, str)):
            raise ParamError(
                "config",
                f"expected a config mapping or the path of a config file, got {type(params['config']).__name__}",
                "bind the config as a JSON object",
            )
        return Context(params["config"])
    path = params.get("config_file")
    if path is not None and not (isinstance(path, str) and path):
        raise ParamError("config_file", f"expected the path of a config file, got {type(path).__name__}", "pass a path")
    return Context(path)


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
        check_plain(params, ParamError)
        ctx = context_from_params(params)
        ctx.budget = invocation_budget(ctx)
        scrubber = ctx.scrubber
        _LOG_SCRUBBER.add(scrubber.secrets)
        result = handler(ctx, params)
        if "error" in result:  # the handler's own failure result (e.g. run_failed)
            return scrubber.scrub_obj(result)
        return scrubber.scrub_obj({"ok": True, **result})
    except EphemeraError as exc:
        log.warning("%s: %s", name, exc.message)
        return scrubber.scrub_obj({"error": exc.to_dict()})
    except Exception as exc:  # noqa: BLE001 - the contract: an action never raises
        log.error("%s crashed:\n%s", name, scrubber.scrub(traceback.format_exc()))
        return scrubber.scrub_obj(
            {"error": {"code": "INTERNAL_ERROR", "message": f"{type(exc).__name__}: {exc}", "retryable": False}}
        )


def _param_secrets(params) -> list[str]:
    """Secrets visible before the config validates (so even a config error is scrubbed)."""
    return raw_secret_values(params.get("config") if isinstance(params, dict) else None)
