"""A run's life: request, apply, finish, destroy; the reaper and the reconciler.

- :mod:`ephemera.lifecycle.request`: an event becomes a run (one per event, one open
  run per workspace).
- :mod:`ephemera.lifecycle.activities`: apply and destroy through the engine, record
  each activity and each failure, advance async ones, record the workload's end.
- :mod:`ephemera.lifecycle.budget`: the budget caps checked at apply (month-to-date spend,
  a run's effective hard deadline); :mod:`~ephemera.lifecycle.cost_cap` ends a run there.
- :mod:`ephemera.lifecycle.reaper`: the rules that end whatever is stuck.
- :mod:`ephemera.lifecycle.reconcile`: the engine's state against the ledger.
- :mod:`ephemera.lifecycle.reap_action`: what a reaper pass did, and why.

Actions are thin wrappers over these functions.
"""

from ephemera.lifecycle.activities import (
    advance_run,
    apply_run,
    destroy_run,
    finish_run,
    record_activity,
    record_failure,
    stack_variables,
    start_destroy,
)
from ephemera.lifecycle.request import RequestOutcome, request_run, run_is_open, workspace_lock

__all__ = [
    "RequestOutcome",
    "advance_run",
    "apply_run",
    "destroy_run",
    "finish_run",
    "record_activity",
    "record_failure",
    "request_run",
    "run_is_open",
    "stack_variables",
    "start_destroy",
    "workspace_lock",
]
