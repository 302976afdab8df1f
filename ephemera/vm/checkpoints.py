"""A workload's checkpoints: small named objects under the run's own prefix, which a
recovered VM of the same run (a spot VM's replacement) restores to resume its work.

``ctx.checkpoint(name, data)`` stores ``data`` (bytes, text, or anything JSON-able) at
:func:`ephemera.layout.checkpoint_key` in the state bucket, replacing the checkpoint of
that name; ``ctx.restore(name)`` gives it back with the type it was stored with, or
None. The run's VMs may write there and nowhere near another run's checkpoints
(:func:`ephemera.layout.run_prefixes`); a new run whose checkpoint prefix already holds
something is refused as planted (:func:`ephemera.lifecycle.request.refuse_planted`).

Stored form: one header line ``ephemera-checkpoint/2 <kind> <tag>`` (``bytes``, ``text``
or ``json``), then the payload as is, so a large binary checkpoint is not inflated. The
tag is HMAC-SHA256 under the run key (which the run's VMs hold and the bucket never does)
over the run id, the storage key, the kind and the payload: whoever can write the bucket
without the key (another run's VM under a shared IBM trusted profile, a leaked bucket
credential) cannot plant a checkpoint that a workload then ``torch.load``s. A checkpoint
whose tag does not check out is refused as :class:`UntrustedCheckpoint` and never decoded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

from ephemera import layout
from ephemera.errors import ParamError

MAGIC = b"ephemera-checkpoint/2"
_DOMAIN = "ephemera-checkpoint"  # in the MAC: a checkpoint tag is no other object's
KINDS = ("bytes", "text", "json")
RUN_KEY_PATTERN = re.compile(r"[0-9a-f]{64}")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_NAME_FIX = "use a plain name of letters, digits, '.', '_' and '-' (at most 128, no '/' and no '..'), e.g. 'epoch' or 'model.pt'"


def check_name(name: Any) -> str:
    """``name`` when it is a plain checkpoint name; ParamError naming ``checkpoint name`` otherwise."""
    if not isinstance(name, str):
        raise ParamError("checkpoint name", f"is {type(name).__name__}, not a string", _NAME_FIX)
    if not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise ParamError("checkpoint name", f"{name!r} is not a plain name", _NAME_FIX)
    return name


def key(run_id: str, name: str) -> str:
    """The storage key of the run's checkpoint ``name`` (checked)."""
    return layout.checkpoint_key(run_id, check_name(name))


class UntrustedCheckpoint(ValueError):
    """The object at a checkpoint's key was not written by this run (no tag, or a wrong one)."""


def _tag(run_key: str, run_id: str, key: str, kind: str, body: bytes) -> str:
    header = json.dumps([_DOMAIN, run_id, key, kind]).encode()  # unambiguous: no separator to forge
    return hmac.new(bytes.fromhex(run_key), header + b"\0" + body, hashlib.sha256).hexdigest()


def encode(data: bytes | str | Any, run_key: str, run_id: str, key: str) -> bytes:
    """The stored form of ``data`` at ``key``, tagged with the run key; ParamError when it is
    neither bytes, text nor JSON-able."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        kind, body = "bytes", bytes(data)
    elif isinstance(data, str):
        kind, body = "text", data.encode()
    else:
        try:
            kind, body = "json", json.dumps(data, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise ParamError(
                "checkpoint data",
                f"a {type(data).__name__} is neither bytes, text nor JSON-able ({exc})",
                "pass bytes (e.g. a serialized model), a str, or dicts/lists of plain values",
            ) from None
    return MAGIC + b" " + kind.encode() + b" " + _tag(run_key, run_id, key, kind, body).encode() + b"\n" + body


def decode(raw: bytes, run_key: str, run_id: str, key: str) -> bytes | str | Any:
    """The data a stored checkpoint holds, with its original type (bytes, str or the JSON
    value); UntrustedCheckpoint, before anything is parsed, when its tag is not this run's."""
    header, sep, body = raw.partition(b"\n")
    magic, _, rest = header.partition(b" ")
    kind, _, tag = rest.decode(errors="replace").partition(" ")
    if not sep or magic != MAGIC or kind not in KINDS or not tag:
        raise UntrustedCheckpoint("not a checkpoint written by ctx.checkpoint")
    if not hmac.compare_digest(tag, _tag(run_key, run_id, key, kind, body)):
        raise UntrustedCheckpoint(f"not written with run {run_id}'s key (planted, tampered, or copied from another key)")
    if kind == "bytes":
        return body
    if kind == "text":
        return body.decode()
    return json.loads(body)
