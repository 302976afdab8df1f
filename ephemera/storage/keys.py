"""Validation of bucket names and object keys, shared by every storage backend.

Keys become file paths on the localhost backend and URL paths on S3, so anything
that could escape a bucket ('..' segments, absolute paths, NUL) is refused with an
error naming the key. Keys are also written to logs and shown in tables, so
characters that can forge or hide text there are refused too: control characters
(C0 with newlines, DEL, C1), line and paragraph separators, format characters
(bidi overrides such as U+202E, zero-width characters) and lone surrogates (which
no store can encode). Error messages show a key with ``repr``, escapes and all.
"""

from __future__ import annotations

import re
import unicodedata

from ephemera.errors import InvalidKeyError

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
BUCKET_PATTERN = _BUCKET_RE.pattern  # for schemas; validate_bucket also refuses '..'
MAX_KEY_BYTES = 1024
# Cc: C0, DEL, C1; Cf: format (bidi, zero-width); Cs: lone surrogates; Zl/Zp: U+2028/U+2029
_HOSTILE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_KEY_FIX = "use printable characters only (no newline, control, bidi/format character or lone surrogate)"


def _short(text: str) -> str:
    """``repr`` of at most 60 characters of ``text`` (a refused key may be long)."""
    return repr(text) if len(text) <= 60 else repr(text[:60])[:-1] + "...'"


def hostile_char(text: str) -> str | None:
    """The first character of ``text`` a key must not hold, or None."""
    if text.isascii() and text.isprintable():  # the usual key: printable ASCII holds none of those categories
        return None
    return next((c for c in text if unicodedata.category(c) in _HOSTILE_CATEGORIES), None)


def _check_chars(text: str, what: str) -> None:
    bad = hostile_char(text)
    if bad is not None:
        raise InvalidKeyError(
            f"{what} {_short(text)} is invalid: it holds the character U+{ord(bad):04X} ({unicodedata.category(bad)}); {_KEY_FIX}"
        )


def validate_bucket(bucket: str) -> str:
    if not isinstance(bucket, str) or not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise InvalidKeyError(f"bucket name {bucket!r} is invalid: use 3-63 lowercase letters, digits, '-' or '.'")
    return bucket


def validate_key(key: str) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidKeyError(f"object key {key!r} is invalid: it must be a non-empty string")
    _check_chars(key, "object key")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidKeyError(f"object key '{key[:40]}...' is invalid: longer than {MAX_KEY_BYTES} bytes")
    if key.startswith("/") or "\x00" in key or "\\" in key:
        raise InvalidKeyError(f"object key {key!r} is invalid: no leading '/', backslash or NUL allowed")
    parts = key.split("/")
    if any(p in ("..", ".") for p in parts) or any(p == "" for p in parts[:-1]):
        raise InvalidKeyError(f"object key {key!r} is invalid: no '.', '..' or empty path segments allowed")
    if parts[-1] == "":
        raise InvalidKeyError(f"object key {key!r} is invalid: it names a folder, not an object")
    return key


def validate_prefix(prefix: str) -> str:
    if not isinstance(prefix, str):
        raise InvalidKeyError(f"prefix {prefix!r} is invalid: it must be a string")
    _check_chars(prefix, "prefix")
    if prefix and (prefix.startswith("/") or "\x00" in prefix or ".." in prefix.split("/")):
        raise InvalidKeyError(f"prefix {prefix!r} is invalid: no leading '/', '..' or NUL allowed")
    return prefix
