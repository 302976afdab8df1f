"""The completion marker: keys, the one model (its two shapes, to_json/from_json), reading and finding markers."""

from __future__ import annotations

import json
import time

import pytest

from ephemera import layout
from ephemera.errors import NoSuchKeyError
from ephemera.model import marker as markers
from ephemera.model.marker import Marker, MarkerFailure, MarkerStatus
from ephemera.storage.localhost.backend import LocalhostStorage

PREFIX = layout.output_prefix("outputs", "ws-1")  # "outputs/ws-1/"


@pytest.fixture
def storage(tmp_path) -> LocalhostStorage:
    store = LocalhostStorage(tmp_path / "storage")
    store.create_bucket("out")
    return store


def test_keys_are_parsed_back_to_the_run():
    assert markers.key(PREFIX, True) == "outputs/ws-1/_SUCCESS.json"
    assert markers.key(PREFIX, False) == "outputs/ws-1/_FAILURE.json"
    assert markers.parse_key("outputs/ws-1/_FAILURE.json") == ("outputs", "ws-1", False)
    assert markers.parse_key("a/b/ws-1/_SUCCESS.json") == markers.MarkerKey("a/b", "ws-1", True)
    assert markers.parse_key("ws-1/_SUCCESS.json") == ("", "ws-1", True)  # an empty workload.output_prefix
    for other in ("outputs/ws-1/metrics.json", "_SUCCESS.json", "outputs/ws-1/_SUCCESS.json.bak", "/_SUCCESS.json"):
        assert markers.parse_key(other) is None, other


def test_success_and_failure_share_one_shape():
    ok = markers.success("ws-1", "pkg.mod:main", {"n": 1}, started=time.time() - 2, outputs=["outputs/ws-1/a"])
    failed = markers.failure("ws-1", "pkg.mod:main", "RuntimeError", "boom", traceback="Traceback ...", log_tail="last line")
    common = {"run_id", "entry", "status", "started_at", "finished_at", "duration_s", "outputs"}
    assert set(ok.to_dict()) == common | {"result"} and set(failed.to_dict()) == common | {"error", "log_tail"}
    assert ok.to_dict()["status"] == "succeeded" and ok.succeeded and ok.duration_s > 0
    assert failed.to_dict()["error"] == {"type": "RuntimeError", "message": "boom", "traceback": "Traceback ..."}
    assert failed.started_at is None and failed.duration_s is None  # the agent may not know when it began
    error = failed.run_error()
    assert (error.code, error.message, error.log_tail, error.retryable) == (
        "WORKLOAD_FAILED",
        "RuntimeError: boom",
        "last line",
        False,
    )


def test_write_read_find_and_exists(storage):
    assert markers.find(storage, "out", PREFIX) is None and not markers.exists(storage, "out", PREFIX)
    key = markers.write(storage, "out", PREFIX, markers.failure("ws-1", "e:f", "AgentError", "workload killed"))
    assert key == "outputs/ws-1/_FAILURE.json" and markers.exists(storage, "out", PREFIX)
    success, marker = markers.find(storage, "out", PREFIX)
    assert success is False and marker.error is not None and marker.error.type == "AgentError"
    with pytest.raises(NoSuchKeyError):
        markers.read(storage, "out", "outputs/ws-1/_SUCCESS.json")


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"just a string"'])
def test_a_garbled_marker_reads_as_a_failure(storage, body):
    storage.put("out", "outputs/ws-1/_SUCCESS.json", body)
    marker = markers.read(storage, "out", "outputs/ws-1/_SUCCESS.json")
    assert marker.status is MarkerStatus.INVALID and not marker.succeeded and not marker.valid
    assert (
        marker.error is not None and marker.error.type == "MarkerError" and "outputs/ws-1/_SUCCESS.json" in marker.error.message
    )
    assert marker.run_error().code == "MARKER_INVALID"
    assert markers.find(storage, "out", PREFIX)[0] is False  # named _SUCCESS.json, but no success
    json.dumps(marker.to_dict())


def test_to_json_and_from_json_are_one_round_trip():
    """Every writer stores ``to_json()`` and every reader parses ``from_json()``: nothing is lost between them."""
    ok = markers.success("ws-1", "pkg.mod:main", {"n": [1, 2]}, started=time.time() - 1, outputs=["outputs/ws-1/a"])
    failed = markers.failure("ws-1", "e:f", "RuntimeError", "boom", traceback="tb", log_tail="tail")
    failed.boot = {"worker": 1, "phases": {"booted": "2026-12-07T00:00:00+00:00"}, "reboots": 0}
    for marker in (ok, failed, markers.invalid("not a JSON object")):
        assert Marker.from_json(marker.to_json()) == marker


def test_a_hostile_marker_reads_field_by_field_never_raises():
    """A marker is written on a VM that runs user code: a field of the wrong type reads as
    absent, an unknown status as a failure (never as a success)."""
    body = {
        "run_id": 7,
        "entry": ["x"],
        "status": "SUCCEEDED!",
        "started_at": {},
        "duration_s": True,
        "outputs": ["a", 3, None],
        "error": "boom",
        "log_tail": 5,
        "boot": [1],
    }
    marker = Marker.from_json(json.dumps(body))
    assert marker.status is MarkerStatus.FAILED and not marker.succeeded and marker.valid
    assert (marker.run_id, marker.entry, marker.started_at, marker.duration_s) == (None, "", None, None)
    assert marker.outputs == ["a"] and marker.error is None and marker.log_tail == "" and marker.boot is None
    assert marker.run_error().code == "WORKLOAD_FAILED"


def test_the_bootstraps_stdlib_failure_marker_reads_as_the_model(tmp_path):
    """The stdlib-only bootstrap writes the marker without the model: its JSON must read as one."""
    from ephemera.vm import bootstrap

    boot = {"run_id": "ws-1", "entry": "e:f", "worker": 2}
    state = bootstrap.State(tmp_path)
    state.data = {"phases": {"booted": "2026-12-07T00:00:00+00:00"}, "reboots": 1}
    raw = bootstrap.failure_marker(boot, state, tmp_path, "BootstrapError", "no GPU", "tb")  # type: ignore[arg-type]
    marker = Marker.from_json(json.dumps(raw))
    assert marker.status is MarkerStatus.FAILED and marker.run_id == "ws-1" and marker.entry == "e:f"
    assert marker.error == MarkerFailure("BootstrapError", "no GPU", "tb") and marker.boot is not None
    assert marker.boot["worker"] == 2 and marker.to_dict() == raw  # the same JSON, whichever side wrote it
