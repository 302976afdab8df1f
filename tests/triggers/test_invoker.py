"""Each invocation runs in its own process: params on stdin, result on its own fd,
stdout/stderr as logs, killed at the timeout; crashes and bad results become errors."""

from __future__ import annotations

import json
import os
import time

import pytest

from ephemera.runtime.invoker import Invoker, run_action

from .conftest import SECRET

T = "tests.triggers.sample_actions"


def _params(make_config, **extra):
    return {**extra, "config": make_config().to_dict(redact=False)}


def test_success_result_and_logs(make_config):
    out = run_action(f"{T}:echo", _params(make_config, ephemera_kind="manual", note="hi"), timeout=30)
    assert out.status == "success" and out.exit_code == 0
    assert out.result["ok"] is True and out.result["event"] == {"ephemera_kind": "manual", "note": "hi"}
    assert out.result["state_bucket"] == "state"
    assert any(line.endswith("stdout: echo: hello on stdout") for line in out.logs)
    assert any(line.endswith("stderr: echo: hello on stderr") for line in out.logs)


def test_config_travels_on_stdin_only_and_the_child_starts_lean(make_config):
    out = run_action(f"{T}:channels", _params(make_config), timeout=30)
    assert out.status == "success", out.result
    assert out.result["received"] is True
    assert out.result["in_argv"] is False and out.result["in_env"] is False
    assert out.result["heavy_modules"] == []  # nothing of ephemera/yaml/watchdog/croniter before the action


def _gone(pid: int) -> bool:
    """True once pid no longer runs (missing, or a zombie awaiting its reaper)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_timeout_kills_the_action_and_its_children(make_config, tmp_path):
    pid_file = tmp_path / "pids.json"
    out = run_action(f"{T}:sleep", _params(make_config, seconds=120, pid_file=str(pid_file), spawn_grandchild=True), timeout=1)
    assert out.status == "timeout"
    assert out.result["error"]["code"] == "ACTION_TIMEOUT"
    assert "1 s" in out.result["error"]["message"]
    assert out.exit_code is None
    assert any("stdout: sleeping" in line for line in out.logs)  # logs up to the kill are kept
    pids = json.loads(pid_file.read_text())
    assert len(pids) == 2 and all(_gone(pid) for pid in pids)


@pytest.mark.parametrize(
    "func, status, code, message",
    [
        ("crash", "developer_error", "ACTION_CRASHED", "exited with code 3"),
        ("boom", "developer_error", "ACTION_EXCEPTION", "ValueError: boom"),
        ("not_a_dict", "developer_error", "ACTION_BAD_RESULT", "returned list, not a dict"),
        ("not_json", "developer_error", "ACTION_BAD_RESULT", "not JSON-serialisable"),
        ("app_error", "application_error", "RUN_NOT_FOUND", "no run 'x'"),
        ("no_such_function", "developer_error", "ACTION_NOT_FOUND", "no_such_function"),
    ],
)
def test_failures_become_error_results(make_config, func, status, code, message):
    out = run_action(f"{T}:{func}", _params(make_config), timeout=30)
    assert out.status == status
    assert out.result["error"]["code"] == code
    assert message in out.result["error"]["message"]


def test_a_crash_keeps_its_logs_and_an_exception_its_traceback(make_config):
    crash = run_action(f"{T}:crash", _params(make_config), timeout=30)
    assert crash.exit_code == 3 and any("about to crash" in line for line in crash.logs)
    boom = run_action(f"{T}:boom", _params(make_config), timeout=30)
    assert any("Traceback" in line for line in boom.logs) and any("ValueError: boom" in line for line in boom.logs)


def test_missing_module_is_reported(make_config):
    out = run_action("tests.triggers.no_such_module:main", _params(make_config), timeout=30)
    assert out.status == "developer_error" and out.result["error"]["code"] == "ACTION_NOT_FOUND"


def test_invocations_run_concurrently(make_config, storage, tmp_path):
    invoker = Invoker(storage, "state", timeout=60, max_workers=2)
    a, b = tmp_path / "a", tmp_path / "b"
    try:
        futures = [
            invoker.submit(
                trigger="t",
                rule="r",
                action="status",
                target=f"{T}:meet",
                params={"mine": str(mine), "other": str(other)},
                event={},
            )
            for mine, other in ((a, b), (b, a))
        ]
        results = [f.result(timeout=60) for f in futures]
    finally:
        invoker.shutdown()
    assert [r.result["met"] for r in results] == [True, True], "the two actions did not run at the same time"


def test_invoker_records_a_timeout_activation(make_config, storage):
    invoker = Invoker(storage, "state", timeout=1, secret_values=[SECRET])
    try:
        record = invoker.submit(
            trigger="tick",
            rule="tick-apply",
            action="apply",
            target=f"{T}:sleep",
            params=_params(make_config, seconds=120),
            event={"ephemera_kind": "alarm"},
        ).result(timeout=60)
    finally:
        invoker.shutdown()
    assert record.status == "timeout" and record.result["error"]["code"] == "ACTION_TIMEOUT"
    from ephemera.runtime.activations import get_activation

    stored = get_activation(storage, "state", record.activationId)
    assert stored.status == "timeout" and stored.result["error"]["code"] == "ACTION_TIMEOUT"


def test_child_sees_its_activation_id(make_config, storage, tmp_path):
    from .conftest import read_records

    invoker = Invoker(storage, "state", timeout=30)
    try:
        record = invoker.submit(
            trigger="t",
            rule="r",
            action="status",
            target=f"{T}:record",
            params={"record_file": str(tmp_path / "rec.jsonl")},
            event={},
        ).result(timeout=60)
    finally:
        invoker.shutdown()
    assert read_records(tmp_path / "rec.jsonl")[0]["activation"] == record.activationId
    assert os.environ.get("__OW_ACTIVATION_ID") is None  # the parent's environment is untouched
