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

Every writer and reader goes through :class:`Marker` (``to_json``/``from_json``).
:func:`read` parses a marker; one that is not a JSON object, or is larger than
``MAX_MARKER_BYTES`` (it is not read then), reads as ``status: "invalid"`` with a
``MarkerError``: whatever its name, it ends its run as failed (``MARKER_INVALID``),
and the run record keeps only that short error, never the oversized body.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Iterable, NamedTuple

from ephemera.errors import NoSuchKeyError
from ephemera.model.runs import RunError
from ephemera.storage.base import Storage
from ephemera.timeutil import iso_of

SUCCESS = "_SUCCESS.json"
FAILURE = "_FAILURE.json"
NAMES = (SUCCESS, FAILURE)  # what a bucket-write trigger for markers filters on
MAX_MARKER_BYTES = 1024 * 1024  # a larger marker is not read: its run fails with MARKER_INVALID


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


# -- the model ---------------------------------------------------------------------------

HARD_DEADLINE_TYPE = "HardDeadlineExceeded"  # the error type of the marker the agent writes when it kills the workload


class MarkerStatus(str, Enum):
    """How the workload ended, as its marker says."""

    SUCCEEDED = "succeeded"  # the workload returned
    FAILED = "failed"  # it raised, its process died, or the VM failed to boot
    INVALID = "invalid"  # what was read is not a marker (not a JSON object, oversized)

    def __str__(self) -> str:
        return self.value


@dataclass
class MarkerFailure:
    """What went wrong, in a failure marker."""

    type: str  # the exception's class name, e.g. "RuntimeError", "AgentError", "BootstrapError"
    message: str  # its message (scrubbed of secrets by the writer)
    traceback: str = ""  # the formatted traceback, when there is one


@dataclass
class Marker:
    """A completion marker: one shape for every writer (the workload runner, the agent,
    the boot) and every reader (the destroy action, the reaper). The stdlib-only
    bootstrap writes the same JSON (``vm.bootstrap.failure_marker``)."""

    run_id: str | None  # the run it ends (None only for an invalid marker)
    entry: str  # the workload's entry point
    status: MarkerStatus  # succeeded, failed or invalid
    started_at: str | None = None  # ISO time the workload started (None: it never did)
    finished_at: str | None = None  # ISO time the marker was made
    duration_s: float | None = None  # seconds from start to marker
    outputs: list[str] = field(default_factory=list)  # keys written before the marker
    result: Any = None  # success: what the workload returned (JSON)
    error: MarkerFailure | None = None  # failure or invalid: what went wrong
    log_tail: str = ""  # failure: the last lines the workload logged
    boot: dict | None = None  # a boot failure: {worker, phases, reboots} of the VM that failed

    @property
    def succeeded(self) -> bool:
        return self.status is MarkerStatus.SUCCEEDED

    @property
    def valid(self) -> bool:
        """False for what :func:`read` could not read as a marker (not JSON, oversized)."""
        return self.status is not MarkerStatus.INVALID

    @property
    def timed_out(self) -> bool:
        """Whether the workload was killed at the run's hard deadline (not failed by itself)."""
        return self.error is not None and self.error.type == HARD_DEADLINE_TYPE

    def run_error(self) -> RunError:
        """The run's error for a failure marker: the workload's error and log tail."""
        err = self.error or MarkerFailure("Error", "")
        if not self.valid:
            return RunError("MARKER_INVALID", err.message or "the completion marker is not valid")
        if self.timed_out:
            return RunError("HARD_TIMEOUT", err.message, self.log_tail)
        return RunError("WORKLOAD_FAILED", f"{err.type}: {err.message}", self.log_tail)

    def to_dict(self) -> dict:
        """The JSON shape (the module docstring's): a success has ``result``, a failure
        ``error`` and ``log_tail``, an invalid marker only its status and error."""
        error = asdict(self.error) if self.error is not None else None
        if self.status is MarkerStatus.INVALID:
            return {"status": self.status.value, "error": error}
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "entry": self.entry,
            "status": self.status.value,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": self.duration_s,
            "outputs": list(self.outputs),
        }
        if self.status is MarkerStatus.SUCCEEDED:
            out["result"] = self.result
        else:
            out.update(error=error, log_tail=self.log_tail)
        if self.boot is not None:
            out["boot"] = self.boot
        return out

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=1, default=str).encode()

    @classmethod
    def from_dict(cls, raw: dict) -> "Marker":
        """A marker from its JSON object. What a VM wrote is not trusted: a field of the
        wrong type reads as absent, an unknown status as a failure."""
        status = raw.get("status")
        known = {s.value: s for s in MarkerStatus}
        err = raw.get("error")
        error = (
            MarkerFailure(str(err.get("type") or "Error"), str(err.get("message") or ""), str(err.get("traceback") or ""))
            if isinstance(err, dict)
            else None
        )
        outputs = raw.get("outputs")
        duration = raw.get("duration_s")
        return cls(
            run_id=_text(raw.get("run_id")),
            entry=_text(raw.get("entry")) or "",
            status=known.get(status, MarkerStatus.FAILED) if isinstance(status, str) else MarkerStatus.FAILED,
            started_at=_text(raw.get("started_at")),
            finished_at=_text(raw.get("finished_at")),
            duration_s=float(duration) if isinstance(duration, (int, float)) and not isinstance(duration, bool) else None,
            outputs=[o for o in outputs if isinstance(o, str)] if isinstance(outputs, list) else [],
            result=raw.get("result"),
            error=error,
            log_tail=_text(raw.get("log_tail")) or "",
            boot=raw.get("boot") if isinstance(raw.get("boot"), dict) else None,
        )

    @classmethod
    def from_json(cls, data: bytes | str, where: str = "the marker") -> "Marker":
        """A marker from its bytes; what is not a JSON object reads as an invalid marker."""
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raw = None
        if not isinstance(raw, dict):
            return invalid(f"{where} is not a JSON object")
        return cls.from_dict(raw)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def invalid(problem: str) -> Marker:
    """What a marker that cannot be read reads as: it ends its run as failed (MARKER_INVALID)."""
    return Marker(None, "", MarkerStatus.INVALID, error=MarkerFailure("MarkerError", problem))


def _times(started: float | None) -> dict[str, Any]:
    finished = time.time()
    return {
        "started_at": iso_of(started) if started is not None else None,
        "finished_at": iso_of(finished),
        "duration_s": round(finished - started, 3) if started is not None else None,
    }


def success(run_id: str, entry: str, result: Any, *, started: float | None = None, outputs: Iterable[str] = ()) -> Marker:
    """A success marker; ``started`` is the workload's start (epoch seconds)."""
    return Marker(run_id, entry, MarkerStatus.SUCCEEDED, outputs=list(outputs), result=result, **_times(started))


def failure(
    run_id: str,
    entry: str,
    error_type: str,
    message: str,
    *,
    traceback: str = "",
    log_tail: str = "",
    started: float | None = None,
    outputs: Iterable[str] = (),
) -> Marker:
    """A failure marker: the error's type and message, its traceback, the log's last lines."""
    return Marker(
        run_id,
        entry,
        MarkerStatus.FAILED,
        outputs=list(outputs),
        error=MarkerFailure(error_type, message, traceback),
        log_tail=log_tail,
        **_times(started),
    )


# -- storage -----------------------------------------------------------------------------


def write(storage: Storage, bucket: str, run_prefix: str, marker: Marker) -> str:
    """Write the marker (the run's last object) and return its key."""
    where = key(run_prefix, marker.succeeded)
    storage.put(bucket, where, marker.to_json())
    return where


def read(storage: Storage, bucket: str, object_key: str) -> Marker:
    """The marker at ``object_key``; raises NoSuchKeyError if it is not there."""
    size = storage.head(bucket, object_key).size
    if size > MAX_MARKER_BYTES:
        return invalid(
            f"marker '{object_key}' is {size} bytes, over the {MAX_MARKER_BYTES}-byte limit; "
            "write large results as outputs and name them in the marker"
        )
    return Marker.from_json(storage.get(bucket, object_key), f"marker '{object_key}'")


def find(storage: Storage, bucket: str, run_prefix: str) -> tuple[bool, Marker] | None:
    """``(success, marker)`` of the run's marker if one is written, else None."""
    for ok in (True, False):
        try:
            marker = read(storage, bucket, key(run_prefix, ok))
        except NoSuchKeyError:
            continue
        return ok and marker.valid, marker
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
