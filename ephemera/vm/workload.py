"""Running a run's workload on a VM, and the context a workload function receives.

A workload is ``def main(ctx: WorkloadContext) -> dict``. It reads ``ctx.params`` and
``ctx.event`` (what fired the run: kind, bucket, key, etag, size, time, trigger), writes
outputs with ``ctx.put_output``, and returns a JSON-able summary. ``run_job``
calls it and then writes the completion marker (:mod:`ephemera.model.marker`):
``_SUCCESS.json`` with the summary, or ``_FAILURE.json`` with the error, traceback and
log tail. The marker is always the last object written, because its write fires the
teardown. These final writes retry the errors storage names transient (a full disk, a
briefly unwritable folder, a throttled endpoint) until the run's hard deadline
(:mod:`ephemera.storage.retry`): a result is never lost to a passing fault.
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ephemera.errors import ParamError
from ephemera.model import marker as markers
from ephemera.model.events import Event
from ephemera.model.jobs import JobSpec
from ephemera.secrets import Scrubber
from ephemera.storage.base import Storage
from ephemera.storage.retry import retry_transient

LOG_TAIL_LINES = 50


@dataclass
class WorkloadContext:
    job: JobSpec  # the spec being run
    storage: Storage  # where outputs go
    worker: int = 0  # index of this VM in the run
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("ephemera.workload"))
    outputs: list[str] = field(default_factory=list)  # keys written so far

    @property
    def params(self) -> dict:
        return self.job.params

    @property
    def run_id(self) -> str:
        return self.job.run_id

    @property
    def event(self) -> Event:
        """What fired this run: ``kind`` (alarm, object_write, manual), ``trigger`` (its
        name), ``time``; for an object write also ``bucket``, ``key``, ``etag`` and ``size``
        of the object. A job written by a controller that did not record it: a manual event."""
        known = {k: v for k, v in self.job.event.items() if k in Event.__dataclass_fields__ and k != "payload"}
        return Event.from_dict({"kind": "manual", "source": "unknown", **known})

    def output_key(self, name: str) -> str:
        if name in markers.NAMES:
            raise ParamError("name", f"'{name}' is reserved for the completion marker", "choose another output name")
        return self.job.output_prefix + name.lstrip("/")

    def put_output(self, name: str, data: bytes | str) -> str:
        """Write ``<output_prefix>/<name>`` and return its key."""
        key = self.output_key(name)
        body = data.encode() if isinstance(data, str) else data
        retry_transient(
            lambda: self.storage.put(self.job.output_bucket, key, body), f"writing output '{key}'", job_deadline(self.job)
        )
        self.outputs.append(key)
        return key

    def put_json(self, name: str, obj: Any) -> str:
        return self.put_output(name, json.dumps(obj, indent=1, sort_keys=True, default=str))


def job_deadline(job: JobSpec) -> datetime | None:
    """The run's hard deadline, until which its final writes are retried."""
    return datetime.fromisoformat(job.hard_deadline) if job.hard_deadline else None


def write_marker(storage: Storage, job: JobSpec, marker: markers.Marker) -> str:
    """Write the run's completion marker, retrying transient storage errors until the deadline."""
    return retry_transient(
        lambda: markers.write(storage, job.output_bucket, job.output_prefix, marker),
        f"run {job.run_id}: writing its completion marker",
        job_deadline(job),
    )


def resolve_entry(entry: str):
    module_name, _, func_name = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ParamError(
            "workload.entry", f"cannot import '{module_name}' ({exc})", "install the module on the VM or fix the entry"
        ) from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ParamError("workload.entry", f"'{module_name}' has no function '{func_name}'", "fix the entry")
    return func


class _TailHandler(logging.Handler):
    """Keeps the last lines logged, for the failure marker."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.buffer = io.StringIO()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.buffer.write(self.format(record) + "\n")

    def tail(self, n: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.buffer.getvalue().splitlines()[-n:])


def run_job(job: JobSpec, storage: Storage, worker: int = 0, scrubber: Scrubber | None = None) -> markers.Marker:
    """Run the workload and write its completion marker. Returns the marker.

    ``scrubber`` masks secret values in the marker (an exception message may quote one)."""
    tail = _TailHandler()
    root = logging.getLogger()
    root.addHandler(tail)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    ctx = WorkloadContext(job=job, storage=storage, worker=worker)
    started = time.time()
    interrupted: BaseException | None = None
    try:
        ctx.log.info("run %s: starting workload %s", job.run_id, job.entry)
        result = resolve_entry(job.entry)(ctx)
        json.dumps(result, default=str)  # fail here, not in the marker write, if not JSON-able
        ctx.log.info("run %s: workload finished", job.run_id)
        marker = markers.success(job.run_id, job.entry, result, started=started, outputs=ctx.outputs)
    except BaseException as exc:  # noqa: BLE001 - every failure must end in a marker
        ctx.log.error("run %s: workload failed: %s: %s", job.run_id, type(exc).__name__, exc)
        marker = markers.failure(
            job.run_id,
            job.entry,
            type(exc).__name__,
            str(exc),
            traceback=traceback.format_exc(),
            log_tail=tail.tail(),
            started=started,
            outputs=ctx.outputs,
        )
        interrupted = exc if isinstance(exc, (KeyboardInterrupt, SystemExit)) else None
    finally:
        root.removeHandler(tail)
    if scrubber is not None:
        marker = markers.Marker.from_dict(scrubber.scrub_obj(json.loads(marker.to_json())))
    write_marker(storage, job, marker)
    if interrupted is not None:
        raise interrupted  # the marker is written first: the run still ends
    return marker
