"""Activation records: stored per invocation with logs and result, listed newest
first, and never holding a secret of the config."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ephemera import layout
from ephemera.cli.activations import format_activation, format_table
from ephemera.cli.up import cmd_activations
from ephemera.secrets import Scrubber
from ephemera.runtime.activations import Activation, get_activation, list_activations, new_activation_id
from ephemera.runtime.invoker import Invoker

from .conftest import KEY_ID, SECRET

T = "tests.triggers.sample_actions"


def test_ids_are_unique_and_sort_by_time():
    ids = [new_activation_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids) and sorted(ids) == ids
    assert all(len(i) == 32 and set(i) <= set("0123456789abcdef") for i in ids)


def test_scrub_replaces_secrets_at_any_depth():
    data = {"a": f"x{SECRET}y", "b": [KEY_ID, {"c": SECRET, SECRET: 1}], "n": 3}
    clean = Scrubber([SECRET, KEY_ID, ""]).scrub_obj(data)
    assert SECRET not in repr(clean) and KEY_ID not in repr(clean)
    assert clean["a"] == "x********y" and clean["n"] == 3


def _all_stored_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_record_has_logs_and_result_and_no_secret(make_config, storage, tmp_path):
    config = make_config()
    invoker = Invoker(storage, "state", timeout=30, secret_values=config.secret_values())
    event = {"ephemera_kind": "manual", "ephemera_trigger": "manual", "why": f"test {SECRET}"}
    try:
        record = invoker.submit(
            trigger="manual",
            rule="r1",
            action="status",
            target=f"{T}:leak_secret",
            params={**event, "config": config.to_dict(redact=False)},
            event=event,
        ).result(timeout=60)
    finally:
        invoker.shutdown()
    stored = get_activation(storage, "state", record.activationId)
    assert storage.head("state", layout.activation_key(record.activationId))
    assert stored.status == "success" and stored.action == "status" and stored.rule == "r1"
    assert stored.trigger == "manual" and stored.target == f"{T}:leak_secret"
    assert stored.result["ok"] is True and stored.result["echo"] == "********"
    assert any("using key ******** / ********" in line for line in stored.logs)
    assert any("stderr: secret on stderr ********" in line for line in stored.logs)
    assert stored.event["why"] == "test ********" and "config" not in stored.event
    raw = _all_stored_bytes(tmp_path / "storage")
    assert SECRET.encode() not in raw and KEY_ID.encode() not in raw


def _fake(i: int, status: str = "success") -> Activation:
    aid = new_activation_id()
    return Activation(
        aid,
        "tick",
        "tick-apply",
        "apply",
        "ephemera.actions.apply:main",
        f"2026-01-01T00:00:0{i}+00:00",
        f"2026-01-01T00:00:0{i}+00:00",
        1500,
        status,
        {"ok": True, "run_id": f"run-{i}", "state": "APPLYING"},
    )


def test_list_newest_first_with_limit_and_table(storage, make_config, capsys):
    from ephemera.runtime.activations import store_activation

    made = [store_activation(storage, "state", _fake(i)) for i in range(5)]
    listed = list_activations(storage, "state", limit=3)
    assert [a.activationId for a in listed] == [a.activationId for a in reversed(made)][:3]
    assert len(list_activations(storage, "state", limit=None)) == 5
    table = format_table(listed)
    assert table.splitlines()[0].split()[:3] == ["ACTIVATION", "ID", "START"]
    assert made[4].activationId in table and "run_id=run-4 state=APPLYING" in table and "1.50s" in table
    assert get_activation(storage, "state", made[2].activationId[:20]).activationId == made[2].activationId
    assert "run-2" in format_activation(made[2])
    # the command prints the same table; an unknown id is an error exit
    config = make_config()
    assert cmd_activations(config, argparse.Namespace(limit=2, activation_id=None)) == 0
    out = capsys.readouterr().out
    assert made[4].activationId in out and made[2].activationId not in out
    assert cmd_activations(config, argparse.Namespace(limit=2, activation_id="ffff")) == 1
    capsys.readouterr()
    assert cmd_activations(config, argparse.Namespace(limit=1, logs=True)) == 0  # the lead's CLI flags
    out = capsys.readouterr().out
    assert f"activation  {made[4].activationId}" in out and "logs (0 lines)" in out
    assert made[4].get("result") == made[4].result and made[4].get("nope") is None
    assert made[4]["action"] == "apply"


def test_a_follower_reads_each_record_once_and_the_new_ones(storage, monkeypatch):
    """``ephemera logs --follow`` polls every second: it reads the records it has not
    seen, oldest first, never every record again."""
    from ephemera.runtime import activations
    from ephemera.runtime.activations import new_activations, store_activation

    first = [store_activation(storage, "state", _fake(i)) for i in range(3)]
    seen: set[str] = set()
    assert [a.activationId for a in new_activations(storage, "state", seen)] == [a.activationId for a in first]
    reads = []
    real = activations.get_json
    monkeypatch.setattr(activations, "get_json", lambda st, b, key: reads.append(key) or real(st, b, key))
    assert new_activations(storage, "state", seen) == [] and reads == []
    later = store_activation(storage, "state", _fake(3))
    assert [a.activationId for a in new_activations(storage, "state", seen)] == [later.activationId]
    assert reads == [layout.activation_key(later.activationId)]


def test_no_activations_yet(storage):
    from ephemera.errors import NoSuchBucketError

    with pytest.raises(NoSuchBucketError):  # a missing state bucket is an error (issue 11, defect 12)
        list_activations(storage, "nobucket")
    storage.create_bucket("nobucket")
    assert list_activations(storage, "nobucket") == []
    assert format_table([]) == "no activations"
