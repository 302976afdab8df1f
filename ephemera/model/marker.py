"""The completion marker: the last object a run's workload writes; its write ends the run.

Key: ``<run prefix>_SUCCESS.json`` or ``<run prefix>_FAILURE.json``, where the run
prefix is the job's own ``output_prefix`` (``<workload.output_prefix>/<run_id>/``, see
:func:`ephemera.layout.output_prefix`).

Shapes (JSON objects), both with ``run_id``, ``entry``, ``status``, ``started_at``,
``finished_at``, ``duration_s`` and ``outputs`` (keys written before the marker):

- success: ``status: "succeeded"`` and ``result`` (what the workload returned);
- failure: ``status: "failed"``, ``error: {type, message, traceback}`` and ``log_tail``.
  The workload runner writes it when the workload raises; the VM agent writes the same
  shape when the workload process dies without a marker or is killed at the deadline.

:func:`read` parses a marker; one that is not a JSON object, or is larger than
``MAX_MARKER_BYTES`` (it is not read then), reads as ``status: "invalid"`` with a
``MarkerError``: whatever its name, it ends its run as failed (``MARKER_INVALID``),
and the run record keeps only that short error, never the oversized body.
"""

from __future__ import annotations

import json
import time
from typing import Any, NamedTuple

from ephemera.errors import NoSuchKeyError
from ephemera.model.runs import RunError
from ephemera.storage.base import Storage
from ephemera.timeutil import iso_of

SUCCESS = "_SUCCESS.json"
FAILURE = "_FAILURE.json"
NAMES = (SUCCESS, FAILURE)  # what a bucket-write trigger for markers filters on
MAX_MARKER_BYTES = 1024 * 1024  # a larger marker is not read: its run fails with MARKER_INVALID
INVALID = "invalid"  # the status of a marker that could not be read as one


class MarkerKey(NamedTuple):
    prefix: str  # the workload's output prefix (the part before the run id)
    run_id: str  # the run the marker ends
    success: bool  # _SUCCESS.json (True) or _FAILURE.json (False)


def name(success: bool) -> str:
    return SUCCESS if success else FAILURE


def key(run_prefix: str, success: bool) -> str:
    """The marker's key under the run's own output prefix (``JobSpec.output_prefix``)."""
    return run_prefix + name(success)


def parse_key(object_key: str) -> MarkerKey | None:
    """What a written key says, if it is a completion marker (``.../<run_id>/_SUCCESS.json``)."""
    head, _, base = object_key.rpartition("/")
    if base not in NAMES or not head:
        return None
    prefix, _, run_id = head.rpartition("/")
    if not run_id:
        return None
    return MarkerKey(prefix, run_id, base == SUCCESS)


# -- shapes ------------------------------------------------------------------------------

def _common(run_id: str, entry: str, status: str, started: float | None, outputs) -> dict:
    finished = time.time()
    return {"run_id": run_id, "entry": entry, "status": status,
            "started_at": iso_of(started) if started is not None else None, "finished_at": iso_of(finished),
            "duration_s": round(finished - started, 3) if started is not None else None, "outputs": list(outputs)}


def success(run_id: str, entry: str, result: Any, *, started: float | None = None, outputs=()) -> dict:
    """A success marker; ``started`` is the workload's start (epoch seconds)."""
    return {**_common(run_id, entry, "succeeded", started, outputs), "result": result}


def failure(run_id: str, entry: str, error_type: str, message: str, *, traceback: str = "", log_tail: str = "",
            started: float | None = None, outputs=()) -> dict:
    """A failure marker: the error's type and message, its traceback, the log's last lines."""
    return {**_common(run_id, entry, "failed", started, outputs),
            "error": {"type": error_type, "message": message, "traceback": traceback}, "log_tail": log_tail}


def is_success(marker: dict) -> bool:
    return marker.get("status") == "succeeded"


def is_valid(marker: dict) -> bool:
    """False for what :func:`read` could not read as a marker (not JSON, oversized)."""
    return marker.get("status") != INVALID


HARD_DEADLINE_TYPE = "HardDeadlineExceeded"  # the error type of the marker the agent writes when it kills the workload


def timed_out(marker: dict) -> bool:
    """Whether the workload was killed at the run's hard deadline (not failed by itself)."""
    found = marker.get("error")
    return isinstance(found, dict) and found.get("type") == HARD_DEADLINE_TYPE


def run_error(marker: dict) -> RunError:
    """The run's error for a failure marker: the workload's error and log tail."""
    found = marker.get("error")
    err: dict = found if isinstance(found, dict) else {}
    if not is_valid(marker):
        return RunError("MARKER_INVALID", str(err.get("message", "the completion marker is not valid")))
    if timed_out(marker):
        return RunError("HARD_TIMEOUT", str(err.get("message", "")), str(marker.get("log_tail") or ""))
    return RunError("WORKLOAD_FAILED", f"{err.get('type', 'Error')}: {err.get('message', '')}", str(marker.get("log_tail") or ""))


# -- storage -----------------------------------------------------------------------------

def write(storage: Storage, bucket: str, run_prefix: str, marker: dict) -> str:
    """Write the marker (the run's last object) and return its key."""
    where = key(run_prefix, is_success(marker))
    storage.put(bucket, where, json.dumps(marker, indent=1, default=str).encode())
    return where


def _invalid(problem: str) -> dict:
    return {"status": INVALID, "error": {"type": "MarkerError", "message": problem}}


def read(storage: Storage, bucket: str, object_key: str) -> dict:
    """The marker at ``object_key``; raises NoSuchKeyError if it is not there."""
    size = storage.head(bucket, object_key).size
    if size > MAX_MARKER_BYTES:
        return _invalid(f"marker '{object_key}' is {size} bytes, over the {MAX_MARKER_BYTES}-byte limit; "
                        "write large results as outputs and name them in the marker")
    data = storage.get(bucket, object_key)
    try:
        marker = json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        marker = None
    if not isinstance(marker, dict):
        return _invalid(f"marker '{object_key}' is not a JSON object")
    return marker


def find(storage: Storage, bucket: str, run_prefix: str) -> tuple[bool, dict] | None:
    """``(success, marker)`` of the run's marker if one is written, else None."""
    for ok in (True, False):
        try:
            marker = read(storage, bucket, key(run_prefix, ok))
        except NoSuchKeyError:
            continue
        return ok and is_valid(marker), marker
    return None


def exists(storage: Storage, bucket: str, run_prefix: str) -> bool:
    """Whether either marker of the run is written (HEAD only)."""
    for ok in (True, False):
        try:
            storage.head(bucket, key(run_prefix, ok))
            return True
        except NoSuchKeyError:
            continue
    return False
