"""The runs ledger and run records: listing survives corrupt records, transitions explain
conflicts, the job and error are typed (old records still load), one way to record a
failure, and no secret is ever saved."""

from __future__ import annotations

import json
import logging

import pytest

from ephemera import layout
from ephemera.errors import StateConflictError, WorkspaceBusyError
from ephemera.model.jobs import JobSpec
from ephemera.model.ledger import Ledger
from ephemera.model.runs import RunError, RunRecord, RunState
from ephemera.secrets import Scrubber
from ephemera.storage.localhost.backend import LocalhostStorage


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    storage = LocalhostStorage(tmp_path / "storage")
    storage.create_bucket("state")
    return Ledger(storage, "state")


def test_list_skips_a_corrupt_record_and_names_it(ledger, caplog):
    ledger.create(RunRecord(run_id="run-a", workspace="ws", engine="terraform"))
    ledger.create(RunRecord(run_id="run-b", workspace="ws", engine="terraform"))
    ledger.storage.put("state", layout.run_key("torn"), b'{"run_id": "torn", "works')  # not JSON
    ledger.storage.put("state", layout.run_key("alien"), b'{"hello": "world"}')  # JSON, not a run
    ledger.storage.put(
        "state", layout.run_key("badstate"), b'{"run_id": "x", "workspace": "ws", "engine": "t", "state": "EXPLODED"}'
    )
    ledger.storage.put("state", layout.run_key("list"), b"[1, 2]")
    with caplog.at_level(logging.WARNING, logger="ephemera.runs"):
        runs = list(ledger.list())
    assert [r.run_id for r in runs] == ["run-a", "run-b"]
    warned = " ".join(r.getMessage() for r in caplog.records)
    for name in ("torn", "alien", "badstate", "list"):
        assert layout.run_key(name) in warned
    assert [r.run_id for r in ledger.open_runs("ws")] == ["run-a", "run-b"]


def test_list_of_a_missing_bucket_is_an_error_and_of_an_empty_one_empty(tmp_path):
    """A missing state bucket is a misconfiguration, never "no runs yet" (issue 11, defect 12)."""
    from ephemera.errors import NoSuchBucketError

    storage = LocalhostStorage(tmp_path / "storage")
    with pytest.raises(NoSuchBucketError):
        list(Ledger(storage, "nothing-here").list())
    storage.create_bucket("nothing-here")
    assert list(Ledger(storage, "nothing-here").list()) == []


def test_a_forbidden_transition_says_where_to_look(ledger):
    ledger.create(RunRecord(run_id="run-a", workspace="ws", engine="terraform"))
    with pytest.raises(StateConflictError) as err:
        ledger.transition("run-a", RunState.DESTROYED)
    assert "cannot go from REQUESTED to DESTROYED" in str(err.value)
    assert "ephemera runs show run-a" in str(err.value)
    assert ledger.get("run-a").state == RunState.REQUESTED


SECRET = "s3cr3t-value-0123456789"


def _job(run_id: str = "run-a") -> JobSpec:
    return JobSpec(
        run_id=run_id,
        workspace="ws",
        entry="ephemera.workloads.smoke:main",
        params={"n": 1},
        state_bucket="state",
        output_bucket="out",
        output_prefix=f"outputs/{run_id}/",
        worker_count=2,
    )


def test_job_and_error_are_typed_and_stored_as_json_objects(ledger):
    record = RunRecord(run_id="run-a", workspace="ws", engine="terraform", job=_job())
    record.fail(RunError("APPLY_FAILED", "apply failed", "Error: boom", retryable=False), RunState.APPLY_FAILED)
    assert ledger.create(record)
    raw = json.loads(ledger.storage.get("state", layout.run_key("run-a")))
    assert raw["job"]["output_prefix"] == "outputs/run-a/" and raw["job"]["worker_count"] == 2
    assert raw["error"] == {"code": "APPLY_FAILED", "message": "apply failed", "log_tail": "Error: boom", "retryable": False}
    back = ledger.get("run-a")
    assert back.job == record.job and back.error == record.error and back.state == RunState.APPLY_FAILED


def test_records_written_before_the_typed_fields_still_load(ledger):
    old = {
        "run_id": "run-old",
        "workspace": "ws",
        "engine": "terraform",
        "state": "DESTROY_FAILED",
        "job": {**_job("run-old").to_dict(), "retired_field": 1},
        "error": {"code": "DESTROY_FAILED", "message": "destroy failed: 503", "log_tail": "x"},
    }
    ledger.storage.put("state", layout.run_key("run-old"), json.dumps(old).encode())
    never_requested = {"run_id": "run-bare", "workspace": "ws", "engine": "terraform", "job": {}, "error": None}
    ledger.storage.put("state", layout.run_key("run-bare"), json.dumps(never_requested).encode())
    run = ledger.get("run-old")
    assert run.job.output_bucket == "out" and run.job.entry == "ephemera.workloads.smoke:main"
    assert run.error.code == "DESTROY_FAILED" and run.error.retryable is False  # unknown: never retried blindly
    assert ledger.get("run-bare").job is None and ledger.get("run-bare").error is None
    # an incomplete destroy of that time was retried by its code: it still is
    assert RunError.from_dict({"code": "DESTROY_INCOMPLETE", "message": "still present: vm"}).retryable


def test_a_failure_is_recorded_once_with_its_destroy_attempt():
    record = RunRecord(run_id="run-a", workspace="ws", engine="terraform", state=RunState.DESTROYING)
    record.fail(RunError("DESTROY_INCOMPLETE", "still present: vm", retryable=True), RunState.DESTROY_FAILED)
    assert record.state == RunState.DESTROY_FAILED and record.attempts == {"destroy": 1}
    assert record.transitions[-1].reason == "still present: vm"
    # a failure that may arrive after the run moved on keeps its error but not the state
    applying = RunRecord(run_id="run-b", workspace="ws", engine="terraform", state=RunState.SUCCEEDED)
    applying.fail(RunError("APPLY_FAILED", "late"), RunState.APPLY_FAILED, from_states=frozenset({RunState.APPLYING}))
    assert applying.state == RunState.SUCCEEDED and applying.error.code == "APPLY_FAILED" and not applying.attempts
    assert RunError.from_exception(WorkspaceBusyError("busy", log_tail="t")).retryable
    unknown = RunError.from_exception(KeyError("boom"))
    assert unknown.code == "ENGINE_ERROR" and not unknown.retryable and "KeyError" in unknown.message


def test_the_ledger_scrubs_secrets_from_every_record_it_saves(tmp_path):
    storage = LocalhostStorage(tmp_path / "storage")
    storage.create_bucket("state")
    ledger = Ledger(storage, "state", scrubber=Scrubber([SECRET]))
    record = RunRecord(run_id="run-a", workspace="ws", engine="terraform", event={"payload": {"token": SECRET}})
    assert ledger.create(record)

    def leak(rec: RunRecord) -> None:
        rec.fail(RunError("ENGINE_ERROR", f"auth failed for key {SECRET}", f"curl -H 'key: {SECRET}'"))
        rec.result = {"echo": SECRET, SECRET: "as a key"}

    saved = ledger.update("run-a", leak)
    stored = storage.get("state", layout.run_key("run-a")).decode()
    assert SECRET not in stored and "********" in stored
    assert SECRET not in json.dumps(saved.to_dict())  # what the caller gets back is what was stored
    assert ledger.get("run-a").error.message == "auth failed for key ********"


def test_runs_and_runs_show_print_control_characters_as_escapes(local_config):
    """Finding 11: a trigger name or an error message with terminal control sequences was
    printed verbatim by ``ephemera runs`` and ``ephemera runs show`` (an OSC sequence
    retitles the window, CSI 2J clears the screen, a bidi override reorders the line).
    They are now shown as escapes; an error's own lines stay indented under it."""
    from ephemera.cli.runs import run_details, runs_table
    from ephemera.context import Context

    ctx = Context(local_config())
    ctx.storage.create_bucket(ctx.config.state_bucket)
    hostile = "\x1b]0;owned\x07\x1b[2J\u202enightly\x9b1m"
    ctx.ledger.create(RunRecord(run_id="ws-1", workspace="ws", engine="terraform", event={"kind": "alarm", "trigger": hostile}))
    ctx.ledger.transition("ws-1", RunState.APPLYING, "go")
    ctx.ledger.update(
        "ws-1",
        lambda r: r.fail(
            RunError("APPLY_FAILED", "boom\x1b[8m\nerror: FORGED (not retryable): x", log_tail="tail \x1b[2J line"),
            RunState.APPLY_FAILED,
        ),
    )
    record = ctx.ledger.get("ws-1")
    for printed in (runs_table(ctx), run_details(ctx, record)):
        for raw in ("\x1b", "\x07", "\u202e", "\x9b"):
            assert raw not in printed, repr(raw)
    assert "\\x1b]0;owned\\x07\\x1b[2J\\u202enightly\\x9b1m" in runs_table(ctx)
    details = run_details(ctx, record)
    assert "trigger \\x1b]0;owned" in details and "boom\\x1b[8m" in details and "tail \\x1b[2J line" in details
    assert "\n  error: FORGED" in details and "\nerror: FORGED" not in details
