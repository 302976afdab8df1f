"""Action ``reap``: fired by its own alarm (and every minute by ``ephemera up``).

Destroys every run past its hard timeout, every failed or interrupted apply, every
finished run whose destroy never started, retries retryable destroy failures with
backoff, and sweeps what no open run owns. See ephemera/lifecycle/reaper.py for the
rules.
"""

from __future__ import annotations

from ephemera.actionkit import run_action
from ephemera.context import Context
from ephemera.lifecycle.reap_action import reap_summary
from ephemera.lifecycle.reaper import reap


def handle(ctx: Context, params: dict) -> dict:
    actions = reap(ctx)
    return {"acted": len(actions), "actions": reap_summary(actions)}


def main(params: dict) -> dict:
    return run_action("reap", params, handle)
