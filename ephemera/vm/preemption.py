"""Watching for the platform's preemption notice on a spot VM.

The agent starts a :class:`PreemptionWatcher` that polls the notice source every
:data:`POLL_INTERVAL` seconds; on the first notice it calls the agent back once (the
agent then writes the ``preempted`` heartbeat, tells the workload and ships its logs:
:mod:`ephemera.vm.agent`). A failed poll is logged and is never a notice: only the
platform's own document says a VM is preempted.

The sources, chosen by the agent config's ``preemption`` (:func:`watch_config`: the boot
document's ``preemption`` entry, which the stack sets, else the VM's identity kind):

- ``aws``: the instance metadata service, IMDSv2. ``PUT /latest/api/token`` with the
  header ``X-aws-ec2-metadata-token-ttl-seconds`` gives a session token; ``GET
  /latest/meta-data/spot/instance-action`` with ``X-aws-ec2-metadata-token`` answers 404
  until EC2 schedules the interruption, then ``{"action": "terminate"|"stop"|"hibernate",
  "time": ISO}`` (two minutes ahead, except for hibernate). AWS asks for a check every
  5 seconds; this polls more often.
- ``ibm``: IBM's VPC documentation names no in-guest preemption notice (a spot VM gets
  best-effort 30 s before it is stopped or deleted). The best available is the instance
  metadata service's instance document, ``GET /metadata/v1/instance``, after an instance
  identity token from ``PUT /identity/v1/token`` (:mod:`ephemera.vm.bootstrap`'s call): the
  instance's ``status_reasons``/``lifecycle_reasons`` carry a preemption code (the VPC
  API's ``stopped_by_preemption``) once IBM preempts it, and ``availability_policy.
  preemption`` says whether it is stopped or deleted.
- ``local``: the notice file :mod:`ephemera.vm.local_preempt` writes (the local stand-in
  for the metadata service): ``{"action": ..., "time": ISO}``.

Calls use the standard library with short timeouts: a metadata service that does not
answer must not hold the agent.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Protocol

from ephemera.timeutil import now_iso
from ephemera.vm.bootstrap import vpc_instance_identity_token

log = logging.getLogger("ephemera.vm.preemption")

NOTICE_FD_ENV = "EPHEMERA_PREEMPT_FD"  # the workload's end of the agent's notice pipe (one JSON line)
POLL_INTERVAL = 2.0  # seconds between polls (AWS gives 2 minutes, IBM best-effort 30 s)
HTTP_TIMEOUT = 2.0  # seconds a metadata call may take
AWS_ENDPOINT = "http://169.254.169.254"
AWS_TOKEN_TTL = 21600  # seconds an IMDSv2 session token lives (the most AWS allows)
IBM_TOKEN_SECONDS = 300  # seconds an IBM instance identity token lives
TOKEN_MARGIN = 30  # seconds before its expiry a token is renewed
IBM_IDENTITY_KIND = "vpc-trusted-profile"  # the boot document's identity on IBM VPC (ephemera.vm.bootstrap)


class NoticeSource(Protocol):
    source: str  # "aws", "ibm" or "local": the heartbeat's preemption.source

    def poll(self) -> dict | None:
        """{"action": ..., "time": ISO or None} once the platform has given notice; None before. Raises on a failed call."""


def _call(method: str, url: str, headers: dict, data: bytes | None = None, timeout: float = HTTP_TIMEOUT) -> bytes:
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


class AWSSpotNotice:
    """EC2's ``spot/instance-action`` document over IMDSv2."""

    source = "aws"

    def __init__(self, endpoint: str = AWS_ENDPOINT, timeout: float = HTTP_TIMEOUT):
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout
        self._token: str | None = None
        self._token_until = 0.0

    def _session_token(self) -> str:
        if self._token is None or time.monotonic() >= self._token_until:
            headers = {"X-aws-ec2-metadata-token-ttl-seconds": str(AWS_TOKEN_TTL)}
            self._token = _call("PUT", f"{self.endpoint}/latest/api/token", headers, b"", self.timeout).decode().strip()
            self._token_until = time.monotonic() + AWS_TOKEN_TTL - TOKEN_MARGIN
        return self._token

    def poll(self) -> dict | None:
        url = f"{self.endpoint}/latest/meta-data/spot/instance-action"
        try:
            body = _call("GET", url, {"X-aws-ec2-metadata-token": self._session_token()}, None, self.timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None  # no interruption scheduled
            if exc.code == 401:
                self._token = None  # expired or revoked: a new one next time
            raise
        doc = json.loads(body)
        if not isinstance(doc, dict) or not doc.get("action"):
            raise ValueError(f"spot/instance-action is not the documented object: {body[:200]!r}")
        return {"action": str(doc["action"]), "time": doc.get("time")}


class IBMInstanceStatus:
    """IBM VPC's instance document from the metadata service (no dedicated notice exists)."""

    source = "ibm"

    def __init__(self, metadata_url: str, version: str, timeout: float = HTTP_TIMEOUT):
        self.base = metadata_url.rstrip("/")
        self.version = version
        self.timeout = timeout
        self._token: str | None = None
        self._token_until = 0.0

    def _identity_token(self) -> str:
        if self._token is None or time.monotonic() >= self._token_until:
            # the bootstrap's own call (the one module that speaks the IBM metadata protocol's token header)
            self._token = str(vpc_instance_identity_token(self.base, self.version, IBM_TOKEN_SECONDS, self.timeout))
            self._token_until = time.monotonic() + IBM_TOKEN_SECONDS - TOKEN_MARGIN
        return self._token

    def poll(self) -> dict | None:
        headers = {"Authorization": f"Bearer {self._identity_token()}", "Accept": "application/json"}
        try:
            doc = json.loads(
                _call("GET", f"{self.base}/metadata/v1/instance?version={self.version}", headers, None, self.timeout)
            )
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                self._token = None
            raise
        reasons = [r for key in ("status_reasons", "lifecycle_reasons") for r in (doc.get(key) or []) if isinstance(r, dict)]
        if not any("preempt" in str(r.get("code", "")) for r in reasons):
            return None
        policy = doc.get("availability_policy") or {}
        return {"action": str(policy.get("preemption") or "stop"), "time": None}


class LocalNoticeFile:
    """The local stack's notice file (:func:`ephemera.vm.local_preempt.preempt_local_vm`)."""

    source = "local"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def poll(self) -> dict | None:
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        return {"action": str(doc.get("action") or "terminate"), "time": doc.get("time")}


def watch_config(boot: dict) -> dict | None:
    """The agent config's ``preemption`` for a VM booted from ``boot``: the stack's own entry
    (``{"source": "aws"|"ibm"|"local", ...}``), else the source its identity kind implies
    (IBM VPC: the metadata service the identity already names); None: nothing to watch."""
    explicit = boot.get("preemption")
    if isinstance(explicit, dict) and explicit.get("source"):
        return dict(explicit)
    identity = boot.get("identity") or {}
    if identity.get("kind") == IBM_IDENTITY_KIND and identity.get("metadata_url"):
        return {"source": "ibm", "metadata_url": identity["metadata_url"], "metadata_version": identity.get("metadata_version")}
    return None


def notice_source(cfg: dict | None) -> NoticeSource | None:
    """The source an agent config's ``preemption`` names; None without one. ValueError
    naming the field when it names an unknown source or lacks what that source needs."""
    if not cfg:
        return None
    kind = cfg.get("source")
    if kind == "aws":
        return AWSSpotNotice(str(cfg.get("endpoint") or AWS_ENDPOINT))
    if kind == "ibm":
        if not cfg.get("metadata_url") or not cfg.get("metadata_version"):
            raise ValueError("preemption: the ibm source needs metadata_url and metadata_version")
        return IBMInstanceStatus(str(cfg["metadata_url"]), str(cfg["metadata_version"]))
    if kind == "local":
        if not cfg.get("notice_file"):
            raise ValueError("preemption: the local source needs notice_file")
        return LocalNoticeFile(str(cfg["notice_file"]))
    raise ValueError(f"preemption.source {kind!r} is not one of aws, ibm, local")


class PreemptionWatcher:
    """Polls ``source`` until its first notice, then calls ``on_notice`` once with
    ``{"notice_at", "source", "action", "time"}``; stops on :meth:`stop`."""

    def __init__(self, source: NoticeSource, on_notice: Callable[[dict], None], interval: float = POLL_INTERVAL):
        self.source = source
        self.on_notice = on_notice
        self.interval = interval
        self.stopping = threading.Event()
        self.failures = 0  # polls that failed in a row (none of them is a notice)
        self._last_error = ""

    def check(self) -> dict | None:
        """One poll: the notice, or None (also when the call failed: logged, never a preemption)."""
        try:
            found = self.source.poll()
        except Exception as exc:  # noqa: BLE001 - a failed status call is not a preemption
            self.failures += 1
            text = f"{type(exc).__name__}: {exc}"
            level = logging.WARNING if text != self._last_error else logging.DEBUG
            log.log(level, "preemption check (%s) failed %d time(s): %s", self.source.source, self.failures, text)
            self._last_error = text
            return None
        self.failures, self._last_error = 0, ""
        if found is None:
            return None
        notice = {"notice_at": now_iso(), "source": self.source.source, "action": found["action"]}
        if found.get("time"):
            notice["time"] = str(found["time"])
        return notice

    def _run(self) -> None:
        while not self.stopping.is_set():
            notice = self.check()
            if notice is not None:
                self.on_notice(notice)
                return
            self.stopping.wait(self.interval)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="preemption-watch", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.stopping.set()
