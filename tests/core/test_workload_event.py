"""``ctx.event``: the workload learns what fired its run (F6), for every trigger kind:
kind, trigger name, time, and for an object write its bucket, key, etag and size. The
event travels in the signed job spec, so it is what the controller recorded."""

from __future__ import annotations

from datetime import datetime

import pytest

from ephemera.context import Context
from ephemera.events.formats import parse_event
from ephemera.lifecycle import request_run
from ephemera.model.jobs import JobSpec, signed_json, verified
from ephemera.vm.workload import WorkloadContext

KEY = "ab" * 32

EVENTS = {
    "object_write": {
        "ephemera_kind": "object_write",
        "ephemera_trigger": "file-lands",
        "bucket": "ephemera-test",
        "key": "inbox/notes.txt",
        "etag": "0cc175b9c0f1b6a831c399e269772661",
        "size": 1,
        "ephemera_time": "2026-12-07T03:00:00+00:00",
        "params": {"mode": "fast"},
    },
    "alarm": {"ephemera_kind": "alarm", "ephemera_trigger": "nightly", "ephemera_time": "2026-12-07T02:00:00+00:00"},
    "manual": {"idempotency_key": "by-hand"},
}


@pytest.mark.parametrize("kind", sorted(EVENTS))
def test_the_event_that_requested_the_run_reaches_the_workload(local_config, kind):
    ctx = Context(local_config())
    run = request_run(ctx, parse_event(EVENTS[kind])).run
    assert run is not None and run.job is not None
    job = verified(signed_json(run.job, KEY), run.run_id, KEY)  # as the VM reads it: signed with everything else
    event = WorkloadContext(job=job, storage=ctx.storage).event
    assert event.kind == kind and event.payload == {}
    if kind == "object_write":
        assert (event.bucket, event.key, event.etag, event.size) == (
            "ephemera-test",
            "inbox/notes.txt",
            "0cc175b9c0f1b6a831c399e269772661",
            1,
        )
        assert event.trigger == "file-lands" and event.time == datetime.fromisoformat("2026-12-07T03:00:00+00:00")
        assert job.params["mode"] == "fast"  # the trigger payload's params, as before: in ctx.params
    elif kind == "alarm":
        assert event.trigger == "nightly" and event.time is not None and event.key is None
    else:
        assert event.trigger is None and event.bucket is None


def test_a_job_without_a_recorded_event_reads_as_manual():
    """A job spec written before events were recorded (or by ``LocalRun``)."""
    job = JobSpec(run_id="r", workspace="w", entry="m:f", params={}, state_bucket="b", output_bucket="b", output_prefix="o/r/")
    event = WorkloadContext(job=job, storage=None).event  # type: ignore[arg-type]  # storage unused
    assert event.kind == "manual" and event.key is None
