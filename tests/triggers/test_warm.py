"""Warm action processes keep the guarantees of a fresh process per invocation: the
timeout kills the invocation and everything it started, a crash takes only its own
worker, every invocation has its own logs and activation id, no secret is in argv or
the environment; workers are pre-imported, reused, retired after N invocations and
replaced; a destroy never waits behind queued applies."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ephemera.runtime.invoker import Invoker

from .conftest import SECRET
from .test_invoker import _gone, _params

T = "tests.triggers.sample_actions"


@pytest.fixture
def invoker(storage):
    inv = Invoker(storage, "state", timeout=30, secret_values=[SECRET], max_workers=2, max_uses=3)
    yield inv
    inv.shutdown()


def _call(inv, func, params, action="status", timeout=60):
    return inv.submit(trigger="t", rule="r", action=action, target=f"{T}:{func}", params=params, event={}).result(timeout=timeout)


def test_workers_are_pre_imported_reused_and_retired(invoker, tmp_path):
    invoker.prewarm("status", f"{T}:whoami")
    time.sleep(1.0)
    first = _call(invoker, "whoami", {})
    assert first.status == "success" and first.result["imported_age"] > 0.5  # imported before the invocation came
    pids = [first.result["pid"]] + [_call(invoker, "whoami", {}).result["pid"] for _ in range(3)]
    assert pids[0] == pids[1] == pids[2], pids  # one warm worker, reused
    assert pids[3] != pids[0]  # retired after max_uses=3, replaced
    assert first.exit_code == 0


def test_each_invocation_has_its_own_activation_id_and_working_directory(invoker, tmp_path):
    a = _call(invoker, "whoami", {"chdir": str(tmp_path)})
    b = _call(invoker, "whoami", {})
    assert a.result["pid"] == b.result["pid"]
    assert a.result["activation"] == a.activationId and b.result["activation"] == b.activationId
    assert b.result["cwd"] == a.result["cwd"] != str(tmp_path)  # put back after the first changed it


def test_timeout_kills_the_invocation_and_its_children_and_the_worker_is_replaced(storage, make_config, tmp_path):
    inv = Invoker(storage, "state", timeout=1, max_workers=1)
    try:
        pid_file = tmp_path / "pids.json"
        record = _call(inv, "sleep", _params(make_config, seconds=120, pid_file=str(pid_file), spawn_grandchild=True))
        assert record.status == "timeout" and record.result["error"]["code"] == "ACTION_TIMEOUT"
        assert record.exit_code is None and any("stdout: sleeping" in line for line in record.logs)
        pids = json.loads(pid_file.read_text())
        assert len(pids) == 2 and all(_gone(pid) for pid in pids)
        after = _call(inv, "whoami", {})
        assert after.status == "success" and after.result["pid"] not in pids
    finally:
        inv.shutdown()


def test_a_crash_takes_only_its_own_worker(invoker, tmp_path):
    started = tmp_path / "started"
    neighbour = invoker.submit(
        trigger="t",
        rule="r",
        action="status",
        target=f"{T}:sleep",
        params={"seconds": 1.5, "started_file": str(started)},
        event={},
    )
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    crash = _call(invoker, "crash", {})
    assert crash.status == "developer_error" and crash.result["error"]["code"] == "ACTION_CRASHED"
    assert "exited with code 3" in crash.result["error"]["message"] and crash.exit_code == 3
    assert any("about to crash" in line for line in crash.logs)
    assert neighbour.result(timeout=60).status == "success"  # the other worker ran on
    assert _call(invoker, "whoami", {}).status == "success"  # and the pool still serves


def test_logs_belong_to_their_own_invocation(invoker):
    futures = [
        invoker.submit(trigger="t", rule="r", action="status", target=f"{T}:tagged", params={"tag": tag, "lines": 10}, event={})
        for tag in ("alpha", "beta")
    ]
    records = [f.result(timeout=60) for f in futures]
    assert records[0].result["pid"] != records[1].result["pid"]  # ran at the same time, in two workers
    for record, tag, other in zip(records, ("alpha", "beta"), ("beta", "alpha")):
        assert sum(f"stdout: tag {tag} line" in line for line in record.logs) == 10
        assert sum(f"stderr: tag {tag} err" in line for line in record.logs) == 10
        assert not [line for line in record.logs if other in line]
    leaver = _call(invoker, "tagged", {"leave": 0.3})
    after = _call(invoker, "tagged", {"tag": "gamma", "lines": 3, "pause": 0.3})
    assert after.result["pid"] != leaver.result["pid"]  # a worker whose action left a thread is not reused
    assert not [line for line in after.logs + leaver.logs if "leftover thread" in line]


def test_no_secret_in_argv_or_environment_of_warm_processes(invoker, make_config):
    out = _call(invoker, "channels", _params(make_config))
    assert out.status == "success", out.result
    assert out.result["received"] is True and out.result["in_argv"] is False and out.result["in_env"] is False
    for proc in Path("/proc").iterdir():  # every process of this runtime: zygotes and workers
        if not proc.name.isdigit():
            continue
        try:
            cmdline, environ = (proc / "cmdline").read_bytes(), (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"ephemera.runtime.invoker" in cmdline:
            assert SECRET.encode() not in cmdline and SECRET.encode() not in environ


def test_a_destroy_never_waits_behind_queued_applies(storage, tmp_path):
    inv = Invoker(storage, "state", timeout=30, max_workers=1)
    try:
        applies = [
            inv.submit(trigger="t", rule="r", action="apply", target=f"{T}:sleep", params={"seconds": 1.0}, event={})
            for _ in range(3)
        ]
        time.sleep(0.2)
        destroy = inv.submit(trigger="m", rule="d", action="destroy", target=f"{T}:whoami", params={}, event={})
        d = destroy.result(timeout=60)
        done = [f.result(timeout=60) for f in applies]
    finally:
        inv.shutdown()
    assert d.status == "success" and d.end < done[0].end  # done while the first apply still ran
    assert d.start < done[1].start  # before the queued applies started


def test_fresh_processes_when_warm_is_off(storage, make_config):
    inv = Invoker(storage, "state", timeout=30, max_workers=2, warm=False, lanes=False)
    try:
        pids = {_call(inv, "whoami", {}).result["pid"] for _ in range(2)}
        record = _call(inv, "channels", _params(make_config))
    finally:
        inv.shutdown()
    assert len(pids) == 2  # a process per invocation
    assert record.result["heavy_modules"] == []
