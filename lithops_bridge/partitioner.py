"""``obj`` data partitioning: a map over objects in storage, split into chunks.

An ``obj`` item names objects: ``bucket/key``, ``bucket/prefix/`` (every object under
it), ``bucket`` (the whole bucket), the same as ``<backend>://...`` URLs (each
storage backend names its aliases, e.g. ``s3://`` for ``aws_s3://``) or a CloudObject.
Each object becomes ``obj_chunk_number`` chunks, or chunks of ``obj_chunk_size``
bytes, or one chunk. With ``obj_newline`` (default ``\\n``) every line lands whole in
exactly one chunk: the one where the line starts. On the worker the function gets
an :class:`ObjPart` with ``bucket``, ``key``, ``backend``, ``part`` (1-based),
``total_parts``, ``chunk_size``, ``data_byte_range`` and ``data_stream``.
"""

from __future__ import annotations

import io
from typing import Any, Callable

from ephemera.storage import backend_for_scheme
from lithops_bridge.iterdata import as_list, bind, bound_signature, merge_extra_args
from lithops_bridge.storage.utils import CloudObject

READ_AHEAD = 64 * 1024  # bytes read past a chunk's end to finish its last line


class ObjPart:
    """One chunk of one object, as the function's ``obj`` argument."""

    def __init__(self, backend: str, bucket: str, key: str, size: int, start: int, end: int, part: int, newline: str | None):
        self.backend, self.bucket, self.key = backend, bucket, key
        self.size = size  # the whole object's size
        self.data_byte_range = (start, end - 1)  # the nominal chunk, inclusive
        self.chunk_size = end - start
        self.part = part
        self.total_parts = 1
        self.newline = newline
        self.data_stream: io.BytesIO | None = None

    def __repr__(self) -> str:
        return f"<ObjPart {self.backend}://{self.bucket}/{self.key} part {self.part}/{self.total_parts} {self.data_byte_range}>"

    @property
    def path(self) -> str:
        return f"{self.backend}://{self.bucket}/{self.key}"

    def _open(self, storage) -> None:
        """Fetch this chunk (whole lines when ``newline`` is set) into ``data_stream``."""
        self.data_stream = io.BytesIO(self.read_chunk(storage))

    def read_chunk(self, storage) -> bytes:
        start, last = self.data_byte_range
        end = last + 1
        whole = start == 0 and end >= self.size
        if self.newline is None or whole:
            return storage.get_object(self.bucket, self.key, extra_get_args=None if whole else {"Range": f"bytes={start}-{last}"})
        nl = self.newline.encode()
        lo = max(0, start - len(nl))
        data = storage.get_object(
            self.bucket, self.key, extra_get_args={"Range": f"bytes={lo}-{min(self.size, end + READ_AHEAD) - 1}"}
        )
        fetched_to = lo + len(data)
        while fetched_to < self.size and data.find(nl, max(0, end - len(nl) - lo)) < 0:
            more = storage.get_object(
                self.bucket,
                self.key,
                extra_get_args={"Range": f"bytes={fetched_to}-{min(self.size, fetched_to + READ_AHEAD) - 1}"},
            )
            data += more
            fetched_to += len(more)
        if start == 0:
            first = 0
        else:  # the chunk starts at the first line that begins at or after `start`
            pos = data.find(nl, start - len(nl) - lo)
            if pos < 0 or lo + pos + len(nl) >= end:
                return b""
            first = pos + len(nl)
        pos = data.find(nl, max(first, end - len(nl) - lo))  # the line holding byte end-1 ends the chunk
        last_rel = len(data) if pos < 0 else pos + len(nl)
        return data[first:last_rel]


def split_url(obj: Any, default_backend: str) -> tuple[str, str, str]:
    """(backend, bucket, key-or-prefix) of an obj item."""
    if isinstance(obj, CloudObject):
        return obj.backend, obj.bucket, obj.key
    if not isinstance(obj, str):
        raise TypeError(
            f"obj must be 'bucket/key', 'bucket/prefix/', a '<backend>://' URL or a CloudObject, got {type(obj).__name__}"
        )
    backend = default_backend
    if "://" in obj:
        scheme, obj = obj.split("://", 1)
        backend = backend_for_scheme(scheme)
    if obj.startswith("/") or not obj:
        raise ValueError(f"obj '{obj}' is not 'bucket/key' or 'bucket/prefix/'")
    bucket, _, key = obj.partition("/")
    return backend, bucket, key


def chunk_ranges(size: int, chunk_size: int | None, chunk_number: int | None) -> list[tuple[int, int]]:
    if size <= 0:
        return [(0, 0)]
    if chunk_number:
        step = -(-size // int(chunk_number))
    elif chunk_size:
        step = int(chunk_size)
    else:
        step = size
    if step <= 0:
        raise ValueError("obj_chunk_size and obj_chunk_number must be positive")
    return [(s, min(size, s + step)) for s in range(0, size, step)]


def create_partitions(
    storage_config: dict,
    func: Callable,
    iterdata: Any,
    extra_args: Any,
    chunk_size: int | None,
    chunk_number: int | None,
    newline: str | None,
) -> tuple[list[dict], list[int]]:
    """(argument dict of every call, number of chunks of each object in order)."""
    from lithops_bridge.storage import Storage

    items = merge_extra_args(as_list(iterdata), extra_args)
    sig = bound_signature(func)
    storages: dict[str, Storage] = {}
    datas: list[dict] = []
    parts_per_object: list[int] = []
    for item in items:
        entry = bind(sig, item)
        if "obj" not in entry:
            raise ValueError("the function takes 'obj': every iterdata item must give it")
        backend, bucket, key = split_url(entry["obj"], storage_config["backend"])
        if backend not in storages:
            storages[backend] = (
                Storage(storage_config=storage_config) if backend == storage_config["backend"] else Storage(backend=backend)
            )
        storage = storages[backend]
        if key and not key.endswith("/"):
            objects = [(key, int(storage.head_object(bucket, key)["content-length"]))]
        else:
            objects = [(o["Key"], o["Size"]) for o in storage.list_objects(bucket, key) if not o["Key"].endswith("/")]
        for obj_key, size in objects:
            ranges = chunk_ranges(size, chunk_size, chunk_number)
            parts = [ObjPart(backend, bucket, obj_key, size, s, e, i + 1, newline) for i, (s, e) in enumerate(ranges)]
            for p in parts:
                p.total_parts = len(parts)
                datas.append({**entry, "obj": p})
            parts_per_object.append(len(parts))
    return datas, parts_per_object
