"""The runs ledger: listing survives corrupt records, transitions explain conflicts."""

from __future__ import annotations

import logging

import pytest

from ephemera import layout
from ephemera.errors import StateConflictError
from ephemera.model.ledger import Ledger
from ephemera.model.runs import RunRecord, RunState
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
    ledger.storage.put("state", layout.run_key("badstate"), b'{"run_id": "x", "workspace": "ws", "engine": "t", "state": "EXPLODED"}')
    ledger.storage.put("state", layout.run_key("list"), b"[1, 2]")
    with caplog.at_level(logging.WARNING, logger="ephemera.runs"):
        runs = list(ledger.list())
    assert [r.run_id for r in runs] == ["run-a", "run-b"]
    warned = " ".join(r.getMessage() for r in caplog.records)
    for name in ("torn", "alien", "badstate", "list"):
        assert layout.run_key(name) in warned
    assert [r.run_id for r in ledger.open_runs("ws")] == ["run-a", "run-b"]


def test_list_of_a_missing_bucket_is_empty(tmp_path):
    assert list(Ledger(LocalhostStorage(tmp_path / "storage"), "nothing-here").list()) == []


def test_a_forbidden_transition_says_where_to_look(ledger):
    ledger.create(RunRecord(run_id="run-a", workspace="ws", engine="terraform"))
    with pytest.raises(StateConflictError) as err:
        ledger.transition("run-a", RunState.DESTROYED)
    assert "cannot go from REQUESTED to DESTROYED" in str(err.value)
    assert "ephemera runs show run-a" in str(err.value)
    assert ledger.get("run-a").state == RunState.REQUESTED
