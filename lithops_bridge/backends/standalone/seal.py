"""Sealed objects: what the standalone backend later unpickles carries a MAC with the run key.

Every queue and slot object is written as ``MAGIC + tag + body``, where ``tag`` is
HMAC-SHA256 under the run key (``standalone.run_key``, 64 hex digits, handed to the
run's VMs at boot and never stored in the bucket) over the object's kind, the run id,
the object's storage key and its body. A reader checks the tag (``hmac.compare_digest``)
*before* the body is unpickled or even parsed, so whoever can write the bucket without
the key (another run's VM, a leaked bucket credential) cannot make a VM or a client run
code. Binding the kind, run id and key into the tag means a genuine object copied to
another place, another run or another kind (a claim replayed as a result) fails too.

A failed check raises :class:`SealError`; readers treat the object as not theirs: the
server ignores it, the client fails the calls it stood for (see ``backend``). Each
refused key is logged once, naming the key and never the run key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading

from lithops_bridge.errors import BridgeError, ConfigError

MAGIC = b"LBS1"  # lithops-bridge sealed object, format 1
TAG_BYTES = 32
KEY_RE = re.compile(r"^[0-9a-f]{64}$")
log = logging.getLogger("lithops_bridge.seal")
_reported: set[str] = set()
_reported_lock = threading.Lock()
_REPORT_LIMIT = 10_000  # distinct keys remembered (a flood of forgeries must not grow memory without bound)


class SealError(BridgeError):
    """An object's MAC is missing or wrong: it was not written with this run's key."""

    code = "BRIDGE_UNAUTHENTICATED"


def parse_key(value, field: str = "standalone.run_key") -> bytes:
    """The run key as bytes, or ConfigError naming ``field``."""
    if not isinstance(value, str) or not KEY_RE.match(value.strip().lower()):
        raise ConfigError(
            field,
            "missing or not 64 hex digits",
            "use the run's key: `ephemera lithops-config RUN_ID --bridge` writes a config with it "
            "(on a VM of the run, LITHOPS_CONFIG already has it)",
        )
    return bytes.fromhex(value.strip().lower())


def _tag(run_key: bytes, kind: str, run_id: str, key: str, body: bytes) -> bytes:
    header = json.dumps(["lithops-bridge", kind, run_id, key]).encode()  # unambiguous: no separator to forge
    return hmac.new(run_key, header + b"\0" + body, hashlib.sha256).digest()


def seal(run_key: bytes, kind: str, run_id: str, key: str, body: bytes) -> bytes:
    """``body`` as stored at ``key``: with its tag in front."""
    return MAGIC + _tag(run_key, kind, run_id, key, body) + body


def unseal(run_key: bytes, kind: str, run_id: str, key: str, blob: bytes) -> bytes:
    """The body of a sealed object, or SealError when its tag does not check out."""
    head = len(MAGIC) + TAG_BYTES
    if len(blob) < head or not blob.startswith(MAGIC):
        raise SealError(f"object {key} carries no MAC: it was not written by this run's bridge, and is ignored")
    tag, body = blob[len(MAGIC) : head], blob[head:]
    if not hmac.compare_digest(tag, _tag(run_key, kind, run_id, key, body)):
        raise SealError(
            f"object {key} has a wrong MAC (written without run {run_id}'s key, or for another run, place or kind): it is ignored"
        )
    return body


class RunSeal:
    """The run key and run id, bound: seals and unseals this run's objects."""

    def __init__(self, run_key: bytes, run_id: str):
        self._key = run_key
        self.run_id = run_id

    def __repr__(self) -> str:  # never the key
        return f"RunSeal(run_id={self.run_id!r})"

    def seal(self, kind: str, key: str, body: bytes) -> bytes:
        return seal(self._key, kind, self.run_id, key, body)

    def unseal(self, kind: str, key: str, blob: bytes) -> bytes:
        return unseal(self._key, kind, self.run_id, key, blob)

    @staticmethod
    def report(exc: SealError, key: str) -> None:
        report(exc, key)


def report(exc: SealError, key: str) -> None:
    """Log a refused object once per key (a warning naming the key, never the run key)."""
    with _reported_lock:
        if key in _reported:
            return
        if len(_reported) >= _REPORT_LIMIT:
            _reported.clear()
        _reported.add(key)
    log.warning("%s", exc.message)
