"""The storage interface every backend implements, and its records.

Backends: one folder each under ``ephemera/storage/`` (its spec names the client it
builds and the SDK it imports). ``presign`` gives a run's VMs one object without
credentials (the localhost backend's URLs are ``file://`` paths: its VMs share the
machine). Missing objects raise :class:`NoSuchKeyError`; a missing
bucket :class:`NoSuchBucketError`; a malformed key :class:`InvalidKeyError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterator, Protocol, Sequence, runtime_checkable

from ephemera.errors import StorageError


@dataclass(frozen=True)
class ObjectInfo:
    """What a head or list returns for one object."""

    key: str  # full key inside the bucket
    size: int  # bytes
    etag: str  # content hash as the store reports it, without quotes
    last_modified: datetime  # timezone-aware, as the store reports it


PRESIGN_METHODS = {"GET": "get_object", "PUT": "put_object", "DELETE": "delete_object"}  # -> the S3 operation


def check_presign_method(method: str) -> str:
    """The S3 operation a presigned ``method`` stands for; StorageError for any other method."""
    if method not in PRESIGN_METHODS:
        raise StorageError(f"cannot presign method {method!r}: use one of {', '.join(PRESIGN_METHODS)}")
    return PRESIGN_METHODS[method]


@dataclass(frozen=True)
class StorageTraits:
    """What a backend can do, so callers ask the backend instead of comparing names."""

    conditional_put: bool  # the store itself refuses a PUT to an existing key (If-None-Match: *)
    paged_listing: bool  # a listing comes in pages (continuation tokens)
    same_host: bool  # objects live on this machine's disk: only processes here can reach them
    fs_events: bool  # writes can be watched as filesystem events (the backend has a ``root`` folder)
    buckets_on_demand: bool  # a bucket exists as soon as it is written to (no create step)


@runtime_checkable
class Storage(Protocol):
    """Object storage. ``bucket`` arguments are bucket names; keys use '/' separators."""

    backend: str  # the registry name: localhost | aws_s3 | ibm_cos
    traits: StorageTraits  # what this backend can do

    def put(self, bucket: str, key: str, data: bytes) -> ObjectInfo:
        """Create or replace an object."""

    def put_if_absent(self, bucket: str, key: str, data: bytes) -> bool:
        """Create the object only if no object has that key; True if this call created it.

        Must be correct under concurrent callers. Backends whose store has no
        conditional PUT implement it another way (see ibm_cos)."""

    def get(self, bucket: str, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        """The object's bytes, or bytes ``start..end`` inclusive of ``byte_range``."""

    def head(self, bucket: str, key: str) -> ObjectInfo:
        """Metadata of one object."""

    def list(self, bucket: str, prefix: str = "", start_after: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order; with
        ``start_after`` only keys after it (S3's StartAfter), so a caller can read one
        page of a long listing and continue from its last key later."""

    def delete(self, bucket: str, key: str) -> None:
        """Delete an object; deleting a missing object is not an error."""

    def create_bucket(self, bucket: str) -> None:
        """Create the bucket if it does not exist."""

    def bucket_exists(self, bucket: str) -> bool:
        """Whether the bucket exists and is reachable with these credentials."""

    def presign(self, bucket: str, key: str, method: str = "GET", expires: int = 3600) -> str | None:
        """A URL that lets its holder ``method`` (GET, PUT or DELETE) this one object for
        ``expires`` seconds, without credentials; None if this store cannot presign
        (e.g. IBM COS with IAM tokens: presigning needs HMAC keys)."""


@runtime_checkable
class BulkDelete(Protocol):
    """Optional capability: many objects deleted in one call (S3's DeleteObjects takes
    1,000 keys a request; the localhost backend checks each folder once). Callers check
    for it with ``isinstance`` and otherwise delete one object at a time."""

    def delete_many(self, bucket: str, keys: Sequence[str]) -> None:
        """Delete every object named; a missing one is not an error. A StorageError names
        the first key the store refused (some of the others may be gone)."""


def delete_keys(store: Storage, bucket: str, keys: Sequence[str]) -> None:
    """Delete ``keys`` in one call where the store can (:class:`BulkDelete`), else one by one."""
    if isinstance(store, BulkDelete):
        store.delete_many(bucket, keys)
        return
    for key in keys:
        store.delete(bucket, key)
