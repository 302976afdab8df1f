"""``lithops_bridge.Storage``: Lithops' Storage API over an Ephemera storage backend.

``Storage(config=None, backend=None, storage_config=None)`` resolves a Lithops
storage config (see lithops_bridge.config) and builds the matching Ephemera backend
with ``ephemera.assembly.lithops.open_lithops_storage``. Every backend, localhost
included, answers in the shapes Lithops' S3-like backends return (boto3's):
``head_bucket`` and ``delete_object`` a response dict with ``ResponseMetadata``
(``HTTPStatusCode``, ``HTTPHeaders``, ``RetryAttempts``), ``delete_objects`` a list of
those with ``Deleted``, ``head_object`` the response's HTTP headers (lower-case names,
string values: ``content-length``, ``etag`` in quotes, ``last-modified``),
``list_objects`` dicts with ``Key``, ``Size``, ``ETag`` (in quotes) and
``LastModified`` (a datetime), ``put_object`` None; ``upload_file``/``download_file``
True, or False (logged) when the file or the object is missing. Missing objects and
buckets raise ``StorageNoSuchKeyError``. Every bucket, key and prefix is checked by the
core's rules (ephemera.storage.keys) before any call, in every method and for every
backend: a key that could leave its bucket ('..', a leading '/', NUL) raises
``InvalidKeyError`` naming it, also from ``upload_file``/``download_file`` (Lithops'
S3 backends would store it as a literal name, its localhost backend would follow it
out of its folder; refusing it loudly beats a logged False). ``match_pattern`` uses Lithops' glob rules
(lithops_bridge.storage.globber). ``get_object(..., extra_get_args={"Range":
"bytes=a-b"})`` reads a byte range; ``stream=True`` returns a file-like object.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import shutil
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any, BinaryIO

from ephemera.errors import InvalidKeyError, NoSuchBucketError, NoSuchKeyError, StorageError
from ephemera.storage.base import delete_keys
from ephemera.storage.keys import validate_bucket, validate_key, validate_prefix
from lithops_bridge.storage.globber import match
from lithops_bridge.storage.utils import CloudObject, StorageNoSuchKeyError

TEMP_PREFIX = "lithops.jobs/tmp"  # Lithops' default; a run's VMs use lithops.jobs/<run_id>/tmp (vm_service)
_COBJECTS = itertools.count()
log = logging.getLogger("lithops_bridge.storage")


def http_date(when: datetime) -> str:
    """An HTTP date header value (RFC 7231), e.g. 'Tue, 02 Dec 2025 10:00:00 GMT'."""
    return format_datetime(when.astimezone(timezone.utc).replace(microsecond=0), usegmt=True)


def response(status: int, headers: dict | None = None, **fields: Any) -> dict:
    """A boto3-shaped response dict."""
    meta = {
        "HTTPStatusCode": status,
        "HTTPHeaders": {"date": http_date(datetime.now(timezone.utc)), **(headers or {})},
        "RetryAttempts": 0,
    }
    return {**fields, "ResponseMetadata": meta}


def parse_range(extra_get_args: dict | None) -> tuple[int | None, int | None] | None:
    """``{"Range": "bytes=a-b"}`` -> (a, b); ``bytes=a-`` -> (a, None); ``bytes=-n`` -> (None, n)."""
    spec = (extra_get_args or {}).get("Range")
    if not spec:
        return None
    text = str(spec).strip()
    start, sep, end = text[6:].partition("-")
    if not text.startswith("bytes=") or not sep or not (start or end):
        raise ValueError(f"Range {spec!r} is not 'bytes=START-END'")
    return (int(start) if start else None), (int(end) if end else None)


def checked(bucket: str, key: str) -> tuple[str, str]:
    """(bucket, key) once both pass the core's rules; ``InvalidKeyError`` naming the bad one."""
    return validate_bucket(bucket), validate_key(key)


class Storage:
    """Lithops' Storage over Ephemera's storage backends (localhost, aws_s3, ibm_cos)."""

    def __init__(self, config: dict | None = None, backend: str | None = None, storage_config: dict | None = None):
        from ephemera.assembly.lithops import open_lithops_storage  # cold start: the config loader only once a Storage is built
        from lithops_bridge.config import default_storage_config, extract_storage_config

        if storage_config:
            self.config = dict(storage_config)
        else:
            self.config = extract_storage_config(default_storage_config(config_data=config, backend=backend))
        self.backend = self.config["backend"]
        self._store, self.bucket = open_lithops_storage(self.config)
        if self._store.traits.buckets_on_demand:
            self._store.create_bucket(self.bucket)

    def __repr__(self) -> str:
        return f"<lithops_bridge.Storage {self.backend}://{self.bucket}>"

    # Storage must travel to workers (injected `storage`): rebuild from its config there
    def __getstate__(self) -> dict:
        return {"config": self.config}

    def __setstate__(self, state: dict) -> None:
        self.__init__(storage_config=state["config"])

    def get_client(self) -> Any:
        return getattr(self._store, "client", self._store)

    def get_storage_config(self) -> dict:
        return dict(self.config)

    @property
    def ephemera_storage(self):
        """The Ephemera storage backend underneath."""
        return self._store

    # --- objects -------------------------------------------------------------------
    def create_bucket(self, bucket: str) -> None:
        self._store.create_bucket(validate_bucket(bucket))

    def put_object(self, bucket: str, key: str, body: str | bytes | BinaryIO) -> None:
        if isinstance(body, str):
            data = body.encode()
        elif isinstance(body, (bytes, bytearray, memoryview)):
            data = bytes(body)
        elif hasattr(body, "read"):
            data = body.read()
            data = data.encode() if isinstance(data, str) else data
        else:
            raise TypeError(f"body must be str, bytes or a file-like object, got {type(body).__name__}")
        self._store.put(*checked(bucket, key), data)

    def get_object(self, bucket: str, key: str, stream: bool = False, extra_get_args: dict | None = None):
        checked(bucket, key)
        try:
            rng = parse_range(extra_get_args)
            span: tuple[int, int] | None = None
            if rng is not None:
                first, last = rng
                if first is None or last is None:  # open or suffix range: needs the size
                    size = self._store.head(bucket, key).size
                    first, last = (first or 0, size - 1) if last is None else (max(0, size - last), size - 1)
                span = (first, last)
            data = self._store.get(bucket, key, span)
        except (NoSuchKeyError, NoSuchBucketError):
            raise StorageNoSuchKeyError(bucket, key) from None
        return io.BytesIO(data) if stream else data

    def upload_file(
        self, file_name: str, bucket: str, key: str | None = None, extra_args: dict | None = None, config: Any = None
    ) -> bool:
        """Upload a local file; False (logged) if it cannot be read or stored, as in Lithops."""
        key = key or os.path.basename(file_name)
        checked(bucket, key)
        try:
            with open(file_name, "rb") as fh:
                self._store.put(bucket, key, fh.read())
        except InvalidKeyError:  # a refused key is the caller's error, not a failed transfer
            raise
        except (OSError, StorageError) as exc:
            log.error("upload of %s to %s/%s failed: %s", file_name, bucket, key, exc)
            return False
        return True

    def download_file(
        self, bucket: str, key: str, file_name: str | None = None, extra_args: dict | None = None, config: Any = None
    ) -> bool:
        """Download an object to a local file; False (logged) if it is missing or cannot be written."""
        checked(bucket, key)
        file_name = file_name or key
        try:
            body = self.get_object(bucket, key, stream=True)
            dirname = os.path.dirname(file_name)
            if dirname:
                os.makedirs(dirname, exist_ok=True)
            with open(file_name, "wb") as fh:
                shutil.copyfileobj(body, fh)
        except InvalidKeyError:
            raise
        except (OSError, StorageError) as exc:
            log.error("download of %s/%s to %s failed: %s", bucket, key, file_name, exc)
            return False
        return True

    def head_object(self, bucket: str, key: str) -> dict:
        """The object's HTTP headers, as Lithops returns them (``ResponseMetadata.HTTPHeaders``)."""
        checked(bucket, key)
        try:
            info = self._store.head(bucket, key)
        except (NoSuchKeyError, NoSuchBucketError):
            raise StorageNoSuchKeyError(bucket, key) from None
        return {
            "content-length": str(info.size),
            "etag": f'"{info.etag}"',
            "last-modified": http_date(info.last_modified),
            "accept-ranges": "bytes",
        }

    def head_bucket(self, bucket: str) -> dict:
        """The HEAD bucket response (``ResponseMetadata`` with HTTPStatusCode 200)."""
        validate_bucket(bucket)
        if not self._store.bucket_exists(bucket):
            raise StorageNoSuchKeyError(bucket, "")
        return response(200, {"content-length": "0"})

    def list_objects(self, bucket: str, prefix: str | None = None, match_pattern: str | None = None) -> list[dict]:
        validate_bucket(bucket)
        validate_prefix(prefix or "")
        if match_pattern is not None:
            match(match_pattern, "")  # a malformed pattern fails before any request
        try:
            infos = list(self._store.list(bucket, prefix or ""))
        except NoSuchBucketError:
            raise StorageNoSuchKeyError(bucket, prefix or "") from None
        return [
            {"Key": i.key, "LastModified": i.last_modified, "ETag": f'"{i.etag}"', "Size": i.size}
            for i in infos
            if match_pattern is None or match(match_pattern, i.key)
        ]

    def list_keys(self, bucket: str, prefix: str | None = None) -> list[str]:
        return [o["Key"] for o in self.list_objects(bucket, prefix)]

    def delete_object(self, bucket: str, key: str) -> dict:
        """Delete one object (a missing one is no error); the DELETE response (204)."""
        self._store.delete(*checked(bucket, key))
        return response(204)

    def delete_objects(self, bucket: str, key_list: list[str]) -> list[dict]:
        """Delete the keys; one response per 1,000 keys (S3's batch size) with ``Deleted``."""
        for key in key_list:  # all checked before any is deleted
            checked(bucket, key)
        out = []
        for i in range(0, len(key_list), 1000):
            chunk = key_list[i : i + 1000]
            delete_keys(self._store, bucket, chunk)
            out.append(response(200, Deleted=[{"Key": k} for k in chunk]))
        return out

    # --- cloud objects ---------------------------------------------------------------
    def put_cloudobject(self, body: str | bytes | BinaryIO, bucket: str | None = None, key: str | None = None) -> CloudObject:
        prefix = os.environ.get("__LITHOPS_SESSION_ID", "")
        name = f"cloudobject_{os.getpid():x}_{next(_COBJECTS):x}"
        temp = self.config.get("temp_prefix") or TEMP_PREFIX
        key = key or "/".join(p for p in (temp, prefix, name) if p)
        bucket = bucket or self.bucket
        self.put_object(bucket, key, body)
        return CloudObject(self.backend, bucket, key)

    def _check(self, cloudobject: CloudObject) -> None:
        if cloudobject.backend != self.backend:
            raise ValueError(f"CloudObject: invalid storage backend '{cloudobject.backend}' (this Storage is '{self.backend}')")

    def get_cloudobject(self, cloudobject: CloudObject, stream: bool = False):
        self._check(cloudobject)
        return self.get_object(cloudobject.bucket, cloudobject.key, stream=stream)

    def delete_cloudobject(self, cloudobject: CloudObject) -> None:
        self._check(cloudobject)
        self.delete_object(cloudobject.bucket, cloudobject.key)

    def delete_cloudobjects(self, cloudobjects: list[CloudObject]) -> None:
        for co in cloudobjects:
            self._check(co)
        for co in cloudobjects:
            self.delete_object(co.bucket, co.key)


__all__ = ["CloudObject", "Storage", "StorageNoSuchKeyError"]
