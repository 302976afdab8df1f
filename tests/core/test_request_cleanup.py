"""Finding 17 of issue 16, its second half: a storage failure after the workspace lock is
taken left a half-made run (a record without its job spec, the lock held until the
reaper found it stalled). Now the run ends at once, its error recorded, and the
workspace is free for the next event."""

from __future__ import annotations

import pytest

from ephemera import layout
from ephemera.context import Context
from ephemera.errors import StorageError
from ephemera.lifecycle import request_run, workspace_lock
from ephemera.model.runs import RunState
from ephemera.assembly import get_storage
from ephemera.events.formats import parse_event

S = RunState


class FailingJobWrites:
    """The real storage, except that writing a job spec fails (as a COS write did at DEBUG)."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, bucket, key, data):
        run_id = key.rpartition("/")[2].removesuffix(".json")
        if key == layout.job_key(run_id):
            raise StorageError(f"put of '{key}' failed: HTTPClientError", retryable=True)
        return self.inner.put(bucket, key, data)


def test_a_failed_write_after_the_lock_ends_the_run_and_frees_the_workspace(local_config):
    config = local_config()
    real = get_storage(config)
    ctx = Context(config, storage=FailingJobWrites(real))
    with pytest.raises(StorageError):
        request_run(ctx, parse_event({"idempotency_key": "first"}))
    (record,) = list(ctx.ledger.list())
    assert record.state == S.DESTROYED and record.error.code == "STORAGE_ERROR"
    assert [t.state for t in record.transitions][-3:] == ["APPLY_FAILED", "DESTROYING", "DESTROYED"]
    assert workspace_lock(ctx, "ws").current()[1].get("released")
    # the next event gets the workspace at once
    outcome = request_run(Context(config, storage=real), parse_event({"idempotency_key": "second"}))
    assert outcome.created, outcome.reason
