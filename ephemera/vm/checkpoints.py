"""A workload's checkpoints: small named objects under the run's own prefix, which a
recovered VM of the same run (a spot VM's replacement) restores to resume its work.

``ctx.checkpoint(name, data)`` stores ``data`` (bytes, text, or anything JSON-able) at
:func:`ephemera.layout.checkpoint_key` in the state bucket, replacing the checkpoint of
that name; ``ctx.restore(name)`` gives it back with the type it was stored with, or
None. The run's VMs may write there and nowhere near another run's checkpoints
(:func:`ephemera.layout.run_prefixes`); a new run whose checkpoint prefix already holds
something is refused as planted (:func:`ephemera.lifecycle.request.refuse_planted`).

Stored form: one header line ``ephemera-checkpoint/1 <kind>`` (``bytes``, ``text`` or
``json``), then the payload as is, so a large binary checkpoint is not inflated.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ephemera import layout
from ephemera.errors import ParamError

MAGIC = b"ephemera-checkpoint/1"
KINDS = ("bytes", "text", "json")
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


def encode(data: bytes | str | Any) -> bytes:
    """The stored form of ``data``; ParamError when it is neither bytes, text nor JSON-able."""
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
    return MAGIC + b" " + kind.encode() + b"\n" + body


def decode(raw: bytes) -> bytes | str | Any:
    """The data a stored checkpoint holds, with its original type (bytes, str or the JSON value)."""
    header, sep, body = raw.partition(b"\n")
    magic, _, kind = header.partition(b" ")
    if not sep or magic != MAGIC or kind.decode(errors="replace") not in KINDS:
        raise ValueError("not a checkpoint written by ctx.checkpoint")
    if kind == b"bytes":
        return body
    if kind == b"text":
        return body.decode()
    return json.loads(body)
