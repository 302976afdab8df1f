"""The completion marker module: keys, the two shapes, reading and finding markers."""

from __future__ import annotations

import json
import time

import pytest

from ephemera import layout
from ephemera.errors import NoSuchKeyError
from ephemera.model import marker as markers
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
    assert set(ok) == common | {"result"} and set(failed) == common | {"error", "log_tail"}
    assert ok["status"] == "succeeded" and markers.is_success(ok) and ok["duration_s"] > 0
    assert failed["error"] == {"type": "RuntimeError", "message": "boom", "traceback": "Traceback ..."}
    assert failed["started_at"] is None and failed["duration_s"] is None  # the agent may not know when it began
    error = markers.run_error(failed)
    assert (error.code, error.message, error.log_tail, error.retryable) == ("WORKLOAD_FAILED", "RuntimeError: boom", "last line", False)


def test_write_read_find_and_exists(storage):
    assert markers.find(storage, "out", PREFIX) is None and not markers.exists(storage, "out", PREFIX)
    key = markers.write(storage, "out", PREFIX, markers.failure("ws-1", "e:f", "AgentError", "workload killed"))
    assert key == "outputs/ws-1/_FAILURE.json" and markers.exists(storage, "out", PREFIX)
    success, marker = markers.find(storage, "out", PREFIX)
    assert success is False and marker["error"]["type"] == "AgentError"
    with pytest.raises(NoSuchKeyError):
        markers.read(storage, "out", "outputs/ws-1/_SUCCESS.json")


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"just a string"'])
def test_a_garbled_marker_reads_as_a_failure(storage, body):
    storage.put("out", "outputs/ws-1/_SUCCESS.json", body)
    marker = markers.read(storage, "out", "outputs/ws-1/_SUCCESS.json")
    assert marker["status"] == "invalid" and not markers.is_success(marker) and not markers.is_valid(marker)
    assert marker["error"]["type"] == "MarkerError" and "outputs/ws-1/_SUCCESS.json" in marker["error"]["message"]
    assert markers.run_error(marker).code == "MARKER_INVALID"
    assert markers.find(storage, "out", PREFIX)[0] is False  # named _SUCCESS.json, but no success
    json.dumps(marker)
