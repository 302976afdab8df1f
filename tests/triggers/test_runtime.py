"""`ephemera up` end to end with test actions: an alarm fires an action that writes a
completion marker, the marker's bucket write fires a second action, and every
invocation leaves an activation record."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ephemera.errors import ParamError
from ephemera.runtime.activations import list_activations
from ephemera.runtime.runtime import REAPER_TRIGGER, run_up

from .conftest import SECRET, read_records

pytestmark = pytest.mark.slow  # runs `ephemera up` with action processes

T = "tests.triggers.sample_actions"
WAIT = 30


def _soon(seconds: float = 1.0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat()


def _until(predicate, wait: float = WAIT):
    """until() for run_up: the predicate, or give up after `wait` s (the test then fails on outcomes)."""
    deadline = time.monotonic() + wait
    return lambda: predicate() or time.monotonic() > deadline


@pytest.mark.parametrize("watch", ["auto", "poll"])
def test_alarm_then_marker_write_then_second_action(make_config, storage, tmp_path, watch):
    rec = tmp_path / "rec.jsonl"
    config = make_config(
        triggers=[
            {"name": "nightly", "kind": "alarm", "once": _soon(), "payload": {"workload": "digits"}},
            {"name": "done", "kind": "object_write", "prefix": "outputs/", "suffix": ["_SUCCESS.json", "_FAILURE.json"]},
        ],
        rules=[
            {"trigger": "nightly", "action": "apply", "params": {"record_file": str(rec), "size": "small"}},
            {"trigger": "done", "action": "destroy", "params": {"record_file": str(rec)}},
        ],
    )
    targets = {"apply": f"{T}:write_marker", "destroy": f"{T}:record"}
    run_up(
        config,
        action_targets=targets,
        reap_interval=None,
        watch=watch,
        poll_interval=0.2,
        until=_until(lambda: any(r.get("ephemera_kind") == "object_write" for r in read_records(rec))),
    )
    records = read_records(rec)
    kinds = [r["ephemera_kind"] for r in records]
    assert kinds == ["alarm", "object_write"], records
    alarm, write = records
    assert alarm["ephemera_trigger"] == "nightly" and alarm["workload"] == "digits" and alarm["size"] == "small"
    assert write["ephemera_trigger"] == "done" and write["bucket"] == "state"
    assert write["key"].startswith("outputs/run-") and write["key"].endswith("/_SUCCESS.json")
    acts = list_activations(storage, "state", limit=None)
    assert [(a.trigger, a.rule, a.action, a.status) for a in acts] == [
        ("done", "done-destroy", "destroy", "success"),
        ("nightly", "nightly-apply", "apply", "success"),
    ]
    destroy, apply = acts
    assert apply.result["ok"] and apply.result["state"] == "RUNNING"
    assert any("wrote outputs/" in line for line in apply.logs)
    assert destroy.event["key"] == write["key"] and destroy.result["key"] == write["key"]
    assert destroy.activationId > apply.activationId
    raw = b"".join(p.read_bytes() for p in (tmp_path / "storage").rglob("*") if p.is_file())
    assert SECRET.encode() not in raw


def test_stop_waits_for_the_running_action(make_config, storage, tmp_path):
    started = tmp_path / "started"
    config = make_config(
        triggers=[{"name": "go", "kind": "alarm", "once": _soon(0.5)}],
        rules=[{"trigger": "go", "action": "apply", "params": {"seconds": 1, "started_file": str(started)}}],
    )
    stop = threading.Event()

    def stopper():
        deadline = time.monotonic() + WAIT
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        stop.set()

    threading.Thread(target=stopper, daemon=True).start()
    run_up(config, stop=stop, action_targets={"apply": f"{T}:sleep"}, reap_interval=None)
    assert started.exists()
    [act] = list_activations(storage, "state")
    assert act.status == "success" and act.result == {"ok": True, "slept": 1}


def test_action_timeout_from_config(make_config, storage, tmp_path):
    config = make_config(
        timeouts={"action": 1},
        triggers=[{"name": "go", "kind": "alarm", "once": _soon(0.2)}],
        rules=[{"trigger": "go", "action": "apply", "params": {"seconds": 60}}],
    )
    run_up(
        config,
        action_targets={"apply": f"{T}:sleep"},
        reap_interval=None,
        until=_until(lambda: bool(list_activations(storage, "state"))),
    )
    [act] = list_activations(storage, "state")
    assert act.status == "timeout" and act.result["error"]["code"] == "ACTION_TIMEOUT"


def test_builtin_reaper_alarm(make_config, storage):
    config = make_config()  # no triggers or rules at all: only the reaper runs
    run_up(
        config,
        action_targets={"reap": f"{T}:echo"},
        reap_interval=0.3,
        until=_until(lambda: len(list_activations(storage, "state", limit=None)) >= 2),
    )
    acts = list_activations(storage, "state", limit=None)
    assert len(acts) >= 2
    assert all(a.trigger == REAPER_TRIGGER and a.action == "reap" and a.status == "success" for a in acts)
    assert acts[0].event["ephemera_kind"] == "alarm" and acts[0].event["ephemera_trigger"] == REAPER_TRIGGER
    assert acts[0].event["ephemera_time"] != acts[1].event["ephemera_time"]


def test_no_builtin_reaper_when_a_rule_binds_reap(make_config, storage):
    config = make_config(
        triggers=[{"name": "sweep", "kind": "alarm", "cron": "* * * * * *"}], rules=[{"trigger": "sweep", "action": "reap"}]
    )
    run_up(
        config,
        action_targets={"reap": f"{T}:echo"},
        reap_interval=0.1,
        until=_until(lambda: len(list_activations(storage, "state", limit=None)) >= 2),
    )
    assert {a.trigger for a in list_activations(storage, "state", limit=None)} == {"sweep"}


def test_bad_runtime_parameters_are_named(make_config):
    with pytest.raises(ParamError, match="action_targets.apply"):
        run_up(make_config(), action_targets={"apply": "not a target"}, until=lambda: True)
    with pytest.raises(ParamError, match="catch_up"):
        run_up(make_config(), catch_up="sometimes", until=lambda: True)


def test_cmd_up_stops_cleanly_on_sigint(make_config, tmp_path):
    config_file = tmp_path / "ephemera.yaml"
    config_file.write_text(
        f"home: {tmp_path / 'home'}\nlocalhost:\n  root: {tmp_path / 'storage'}\nstorage:\n  bucket: state\n"
        "triggers:\n  - name: tick\n    kind: alarm\n    cron: '0 0 1 1 *'\nrules:\n  - trigger: tick\n    action: status\n"
    )
    code = (
        "import sys, argparse\n"
        "from ephemera.assembly import load_config\n"
        "from ephemera.cli.up import cmd_up\n"
        "sys.exit(cmd_up(load_config(sys.argv[1]), argparse.Namespace(reap_interval=0)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", code, str(config_file)], stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if "next alarm at" in line:
                break
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=WAIT)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(lines) + rest
    assert "ephemera up: stopped" in rest
