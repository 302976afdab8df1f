"""Running a run's workload on a VM, and the context a workload function receives.

A workload is ``def main(ctx: WorkloadContext) -> dict``. It reads ``ctx.params`` and
``ctx.event`` (what fired the run: kind, bucket, key, etag, size, time, trigger), writes
outputs with ``ctx.put_output``, and returns a JSON-able summary. On spot capacity it
saves its progress with ``ctx.checkpoint(name, data)`` and resumes with
``ctx.restore(name)`` (:mod:`ephemera.vm.checkpoints`); ``ctx.preempted`` and
``ctx.on_preempt(callback)`` tell it that the platform is reclaiming the VM (the agent
hands the notice over a pipe, :data:`ephemera.vm.preemption.NOTICE_FD_ENV`). ``run_job``
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
import os
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from ephemera.errors import NoSuchKeyError, ParamError
from ephemera.model import marker as markers
from ephemera.model.events import Event
from ephemera.model.jobs import JobSpec
from ephemera.secrets import Scrubber
from ephemera.storage.base import Storage
from ephemera.storage.retry import retry_transient
from ephemera.vm import checkpoints
from ephemera.vm.preemption import NOTICE_FD_ENV

LOG_TAIL_LINES = 50


@dataclass
class WorkloadContext:
    job: JobSpec  # the spec being run
    storage: Storage  # where outputs go
    worker: int = 0  # index of this VM in the run
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("ephemera.workload"))
    outputs: list[str] = field(default_factory=list)  # keys written so far
    preemption: dict | None = None  # the platform's preemption notice (notice_at, source, action), once received
    run_key: str = field(default="", repr=False)  # the run's key (64 hex digits), which tags its checkpoints; never logged
    _callbacks: list = field(default_factory=list, init=False, repr=False)  # given to on_preempt, not yet called
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)  # guards the two above

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

    # --- checkpoints --------------------------------------------------------------------
    def checkpoint(self, name: str, data: bytes | str | Any) -> str:
        """Save ``data`` (bytes, str or JSON-able) as the run's checkpoint ``name``, replacing
        the last one; returns its key. A recovered VM of this run restores it."""
        key = checkpoints.key(self.run_id, name)
        body = checkpoints.encode(data, self._run_key(), self.run_id, key)
        retry_transient(
            lambda: self.storage.put(self.job.state_bucket, key, body), f"writing checkpoint '{name}'", job_deadline(self.job)
        )
        return key

    def restore(self, name: str) -> bytes | str | Any | None:
        """The run's last checkpoint ``name`` with the type it was saved with, or None when there
        is none. An object there that this run did not write (no tag with the run key) is
        refused: logged as a security warning and restored as None, never decoded."""
        key = checkpoints.key(self.run_id, name)
        run_key = self._run_key()
        try:
            raw = retry_transient(
                lambda: self.storage.get(self.job.state_bucket, key), f"reading checkpoint '{name}'", job_deadline(self.job)
            )
        except NoSuchKeyError:
            return None
        try:
            return checkpoints.decode(raw, run_key, self.run_id, key)
        except checkpoints.UntrustedCheckpoint as exc:
            self.log.warning("run %s: SECURITY: checkpoint '%s' refused, %s; starting without it", self.run_id, name, exc)
            return None

    def _run_key(self) -> str:
        if not checkpoints.RUN_KEY_PATTERN.fullmatch(self.run_key):
            raise ParamError(
                "run key",
                "this workload context has none, so its checkpoints could not be told from planted ones",
                "checkpoint in a workload a VM's agent runs (it gives the run's key)",
            )
        return self.run_key

    # --- preemption -----------------------------------------------------------------------
    @property
    def preempted(self) -> bool:
        """True once the platform said it reclaims this VM: checkpoint now, the VM goes away soon."""
        return self.preemption is not None

    def on_preempt(self, callback: Callable[[dict], Any]) -> None:
        """Call ``callback(notice)`` once when the preemption notice arrives (at once, if it
        already has), in its own thread; an exception it raises is logged, not raised."""
        with self._lock:
            notice = self.preemption
            if notice is None:
                self._callbacks.append(callback)
                return
        self._call(callback, notice)

    def notify_preempted(self, notice: dict) -> None:
        """The agent's notice arrived: set ``preempted`` and run each callback once."""
        with self._lock:
            if self.preemption is not None:
                return
            self.preemption = dict(notice)
            callbacks, self._callbacks = self._callbacks, []
        self.log.warning("run %s: this VM is being preempted (%s): checkpoint now", self.run_id, notice.get("action"))
        for callback in callbacks:
            self._call(callback, self.preemption)

    def _call(self, callback: Callable[[dict], Any], notice: dict) -> threading.Thread:
        def run() -> None:
            try:
                callback(dict(notice))
            except Exception:  # noqa: BLE001 - a workload's callback must not break the run
                self.log.exception("run %s: on_preempt callback %r failed", self.run_id, callback)

        thread = threading.Thread(target=run, name="on-preempt", daemon=True)
        thread.start()
        return thread


def listen_for_preemption(ctx: WorkloadContext, fd: int | None = None) -> threading.Thread | None:
    """Read the agent's notice pipe (default: the fd in :data:`NOTICE_FD_ENV`) in a thread and
    tell ``ctx``; None when no pipe was handed over (a workload run outside an agent)."""
    if fd is None:
        value = os.environ.get(NOTICE_FD_ENV, "")
        if not value.isdigit():
            return None
        fd = int(value)

    def read() -> None:
        with os.fdopen(fd, "rb") as pipe:
            for line in pipe:
                try:
                    notice = json.loads(line)
                except ValueError:
                    continue
                if isinstance(notice, dict):
                    ctx.notify_preempted(notice)

    thread = threading.Thread(target=read, name="preemption-notice", daemon=True)
    thread.start()
    return thread


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


def run_job(
    job: JobSpec, storage: Storage, worker: int = 0, scrubber: Scrubber | None = None, run_key: str = ""
) -> markers.Marker:
    """Run the workload and write its completion marker. Returns the marker.

    ``scrubber`` masks secret values in the marker (an exception message may quote one);
    ``run_key`` tags the workload's checkpoints (without it ``ctx.checkpoint`` refuses)."""
    tail = _TailHandler()
    root = logging.getLogger()
    root.addHandler(tail)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    ctx = WorkloadContext(job=job, storage=storage, worker=worker, run_key=run_key)
    listen_for_preemption(ctx)
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
