"""Validation of bucket names and object keys, shared by every storage backend.

Keys become file paths on the localhost backend and URL paths on S3, so anything
that could escape a bucket ('..' segments, absolute paths, NUL) is refused with an
error naming the key.
"""

from __future__ import annotations

import re

from ephemera.errors import InvalidKeyError

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
BUCKET_PATTERN = _BUCKET_RE.pattern  # for schemas; validate_bucket also refuses '..'
MAX_KEY_BYTES = 1024


def validate_bucket(bucket: str) -> str:
    if not isinstance(bucket, str) or not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise InvalidKeyError(
            f"bucket name {bucket!r} is invalid: use 3-63 lowercase letters, digits, '-' or '.'"
        )
    return bucket


def validate_key(key: str) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidKeyError(f"object key {key!r} is invalid: it must be a non-empty string")
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
    if prefix and (prefix.startswith("/") or "\x00" in prefix or ".." in prefix.split("/")):
        raise InvalidKeyError(f"prefix {prefix!r} is invalid: no leading '/', '..' or NUL allowed")
    return prefix
