"""``lithops_bridge.Storage``: Lithops' Storage API over an Ephemera storage backend.

``Storage(config=None, backend=None, storage_config=None)`` resolves a Lithops
storage config (see lithops_bridge.config) and builds the matching Ephemera backend
with ``ephemera.storage.lithops.open_lithops_storage``. Missing objects raise
``StorageNoSuchKeyError``. ``get_object(..., extra_get_args={"Range": "bytes=a-b"})``
reads a byte range; ``stream=True`` returns a file-like object.
"""

from __future__ import annotations

import io
import itertools
import os
import shutil
from datetime import timezone
from fnmatch import fnmatch
from typing import Any, BinaryIO

from ephemera.errors import NoSuchBucketError, NoSuchKeyError
from lithops_bridge.storage.utils import CloudObject, StorageNoSuchKeyError

TEMP_PREFIX = "lithops.jobs/tmp"
_COBJECTS = itertools.count()


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


class Storage:
    """Lithops' Storage over Ephemera's storage backends (localhost, aws_s3, ibm_cos)."""

    def __init__(self, config: dict | None = None, backend: str | None = None, storage_config: dict | None = None):
        from ephemera.storage.lithops import open_lithops_storage
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
        self._store.create_bucket(bucket)

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
        self._store.put(bucket, key, data)

    def get_object(self, bucket: str, key: str, stream: bool = False, extra_get_args: dict | None = None):
        try:
            rng = parse_range(extra_get_args)
            if rng is not None and None in rng:  # open or suffix range: needs the size
                size = self._store.head(bucket, key).size
                rng = (rng[0], size - 1) if rng[1] is None else (max(0, size - rng[1]), size - 1)
            data = self._store.get(bucket, key, rng)
        except (NoSuchKeyError, NoSuchBucketError):
            raise StorageNoSuchKeyError(bucket, key) from None
        return io.BytesIO(data) if stream else data

    def upload_file(self, file_name: str, bucket: str, key: str | None = None, extra_args: dict | None = None, config: Any = None) -> bool:
        key = key or os.path.basename(file_name)
        with open(file_name, "rb") as fh:
            self._store.put(bucket, key, fh.read())
        return True

    def download_file(self, bucket: str, key: str, file_name: str | None = None, extra_args: dict | None = None, config: Any = None) -> bool:
        file_name = file_name or os.path.basename(key)
        body = self.get_object(bucket, key, stream=True)
        dirname = os.path.dirname(file_name)
        if dirname:
            os.makedirs(dirname, exist_ok=True)
        with open(file_name, "wb") as fh:
            shutil.copyfileobj(body, fh)
        return True

    def head_object(self, bucket: str, key: str) -> dict:
        """HTTP-header-like metadata: content-length, etag, last-modified."""
        try:
            info = self._store.head(bucket, key)
        except (NoSuchKeyError, NoSuchBucketError):
            raise StorageNoSuchKeyError(bucket, key) from None
        return {"content-length": str(info.size), "etag": f'"{info.etag}"',
                "last-modified": info.last_modified.astimezone(timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")}

    def head_bucket(self, bucket: str) -> dict:
        if not self._store.bucket_exists(bucket):
            raise StorageNoSuchKeyError(bucket, "")
        return {"bucket": bucket, "backend": self.backend}

    def list_objects(self, bucket: str, prefix: str | None = None, match_pattern: str | None = None) -> list[dict]:
        try:
            infos = list(self._store.list(bucket, prefix or ""))
        except NoSuchBucketError:
            raise StorageNoSuchKeyError(bucket, prefix or "") from None
        out = [{"Key": i.key, "Size": i.size, "ETag": i.etag, "LastModified": i.last_modified} for i in infos]
        if match_pattern:
            out = [o for o in out if fnmatch(o["Key"], match_pattern)]
        return out

    def list_keys(self, bucket: str, prefix: str | None = None) -> list[str]:
        return [o["Key"] for o in self.list_objects(bucket, prefix)]

    def delete_object(self, bucket: str, key: str) -> None:
        self._store.delete(bucket, key)

    def delete_objects(self, bucket: str, key_list: list[str]) -> None:
        for key in key_list:
            self._store.delete(bucket, key)

    # --- cloud objects ---------------------------------------------------------------
    def put_cloudobject(self, body: str | bytes | BinaryIO, bucket: str | None = None, key: str | None = None) -> CloudObject:
        prefix = os.environ.get("__LITHOPS_SESSION_ID", "")
        name = f"cloudobject_{os.getpid():x}_{next(_COBJECTS):x}"
        key = key or "/".join(p for p in (TEMP_PREFIX, prefix, name) if p)
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
