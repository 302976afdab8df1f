"""Who is applying a run, so that an apply whose action died is ended at once.

An engine that applies in the action's own process (Terraform, locally) leaves no
activity to poll when that process is killed (a second Ctrl-C on ``ephemera up``, an
OOM kill): the run would stay APPLYING, its workspace locked, until the reaper's
action timeout. While it applies, the action keeps a lease in the state bucket
(:func:`ephemera.layout.apply_lease_key`): its host, pid and the process's start time,
signed with the run key (:mod:`ephemera.runkeys`), so whoever can write the bucket
without the key cannot make the reaper end a live apply. A reaper on the same host
that finds that process gone (or its pid reused by another) ends the run now.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
from pathlib import Path

from ephemera import layout
from ephemera.errors import NoSuchKeyError, StorageError
from ephemera.runkeys import run_key

_DOMAIN = b"ephemera apply lease\0"


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc), "" where unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _mac(body: dict, key: str) -> str:
    canonical = json.dumps({k: v for k, v in body.items() if k != "signature"}, sort_keys=True, separators=(",", ":"))
    return hmac.new(bytes.fromhex(key), _DOMAIN + canonical.encode(), hashlib.sha256).hexdigest()


def take(ctx, run_id: str) -> None:
    """Record this process as the one applying ``run_id``."""
    pid = os.getpid()
    body = {"run_id": run_id, "host": socket.gethostname(), "pid": pid, "started": _start_time(pid)}
    body["signature"] = _mac(body, run_key(ctx.config, run_id))
    ctx.storage.put(ctx.config.state_bucket, layout.apply_lease_key(run_id), json.dumps(body).encode())


def release(ctx, run_id: str) -> None:
    """The apply is over (recorded, whatever its outcome)."""
    try:
        ctx.storage.delete(ctx.config.state_bucket, layout.apply_lease_key(run_id))
    except StorageError:
        pass  # the reaper's timeout still covers it; a stale lease of a live run names a live process


def holder_died(ctx, run_id: str) -> str | None:
    """Why the process applying ``run_id`` is known to be gone, or None (alive, elsewhere, or unknown)."""
    try:
        body = json.loads(ctx.storage.get(ctx.config.state_bucket, layout.apply_lease_key(run_id)))
    except (NoSuchKeyError, StorageError, ValueError):
        return None
    if not isinstance(body, dict) or body.get("run_id") != run_id:
        return None
    if not hmac.compare_digest(str(body.get("signature", "")), _mac(body, run_key(ctx.config, run_id))):
        return None  # not written by this controller: not evidence of anything
    if body.get("host") != socket.gethostname() or not isinstance(body.get("pid"), int):
        return None  # another machine's process: its own reaper, or the action timeout, decides
    pid = body["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"the process applying it (pid {pid}) is gone"
    except PermissionError:
        pass  # exists, another user's: compare start times below
    if body.get("started") and _start_time(pid) not in ("", body["started"]):
        return f"the process applying it (pid {pid}) is gone (the pid now belongs to another process)"
    return None
