"""Localhost storage: ``<root>/<bucket>/<key>`` files.

Writes go to a temporary file under ``<root>/.tmp`` and are moved into place, so a
reader or a filesystem watcher never sees a half-written object. A bucket is a
folder, created on first write. ``put_if_absent`` uses ``link()``, which fails
atomically when the target exists.

Every OS error is reported as a StorageError naming the bucket and key, never the
storage root's path (an error may reach an action result); a key segment longer than
a file name may be (255 bytes) is an InvalidKeyError.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Sequence

from ephemera.errors import InvalidKeyError, NoSuchBucketError, NoSuchKeyError, StorageError
from ephemera.storage.base import ObjectInfo, StorageTraits, check_presign_method
from ephemera.storage.keys import validate_bucket, validate_key, validate_prefix
from ephemera.storage.localhost.config import storage_root
from ephemera.storage.localhost.paths import stays_in, walk

# OS errors of a write that may pass by themselves: the backend marks them retryable
TRANSIENT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EIO,
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENOTDIR,
        errno.ENOENT,
        errno.EAGAIN,
        errno.EBUSY,
    }
)


NAME_MAX = 255  # bytes in one file name (one key segment) on Linux and macOS file systems


def _write_error(exc: OSError, bucket: str, key: str) -> StorageError:
    """A StorageError for an OS error of a write, retryable when it may pass."""
    return _os_error(exc, "write", bucket, key)


def _leads_out(bucket: str, key: str) -> InvalidKeyError:
    """The refusal of a key whose path a symbolic link in the bucket leads out of it."""
    return InvalidKeyError(
        f"object key {key!r} in bucket '{bucket}' is refused: a symbolic link in the bucket "
        "leads it out of the bucket; remove the link"
    )


def _os_error(exc: OSError, doing: str, bucket: str, key: str) -> StorageError:
    """A StorageError for an OS error: its reason (``strerror``), never the file's path."""
    reason = exc.strerror or type(exc).__name__
    return StorageError(f"cannot {doing} '{key}' in bucket '{bucket}': {reason}", retryable=exc.errno in TRANSIENT_ERRNOS)


def _check_segments(key: str) -> str:
    for segment in key.split("/"):
        size = len(segment.encode())
        if size > NAME_MAX:
            raise InvalidKeyError(
                f"object key '{key[:40]}...' is invalid on localhost storage: its segment "
                f"'{segment[:20]}...' is {size} bytes; this backend keeps each segment as a file "
                f"name, which holds at most {NAME_MAX} bytes: shorten it"
            )
    return key


class LocalhostStorage:
    backend = "localhost"
    traits = StorageTraits(conditional_put=True, paged_listing=False, same_host=True, fs_events=True, buckets_on_demand=True)

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self.created_buckets: list[str] = []  # configured buckets that from_config() had to make
        self._tmp = self.root / ".tmp"
        self._real_bases: dict[str, str] = {}  # bucket -> its folder's real path, resolved on first use
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
        except OSError:  # briefly unusable: each write reports it (retryable)
            pass

    @classmethod
    def from_config(cls, config) -> "LocalhostStorage":
        storage = cls(storage_root(config))
        # On this machine the configured buckets simply exist: they are folders. Those made
        # now are remembered, so that `ephemera up` can say a (maybe misspelt) bucket is new.
        for bucket in sorted({config.state_bucket, config.output_bucket}):
            if not storage.bucket_exists(bucket):
                storage.created_buckets.append(bucket)
            storage.create_bucket(bucket)
        return storage

    def __repr__(self) -> str:
        return f"LocalhostStorage(root='{self.root}')"

    # paths -----------------------------------------------------------------
    def bucket_path(self, bucket: str) -> Path:
        return self.root / validate_bucket(bucket)

    def _path(self, bucket: str, key: str) -> Path:
        base = self.bucket_path(bucket)
        path = base / _check_segments(validate_key(key))
        # Defence in depth: the key's rules keep it in the bucket by name; a symbolic link
        # planted in the bucket must not lead it out (to read or overwrite another file).
        # The bucket's own real path is resolved once (the root is resolved already): a
        # bucket folder swapped for a link later leads its objects out, and is refused.
        if not self._inside(bucket, key.split("/")):
            raise _leads_out(bucket, key)
        return path

    def _inside(self, bucket: str, segments: list[str]) -> bool:
        """Whether the path of ``segments`` in the bucket stays in it, links followed."""
        real_base = self._real_bases.get(bucket)
        if real_base is None:
            real_base = self._real_bases.setdefault(bucket, os.path.realpath(self.bucket_path(bucket)))
        return stays_in(str(self.root), [bucket, *segments], real_base)

    def _write_tmp(self, data: bytes) -> str:
        try:
            fd, tmp = tempfile.mkstemp(dir=self._tmp)
        except FileNotFoundError:  # the temporary folder was removed: make it again
            self._tmp.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._tmp)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return tmp

    # interface ---------------------------------------------------------------
    def put(self, bucket: str, key: str, data: bytes) -> ObjectInfo:
        path = self._place(bucket, key, data, exclusive=False)
        assert path is not None  # only an exclusive write finds its key taken
        try:
            return self._info(key, path, data)
        except FileNotFoundError:  # a consumer deleted it right after the write, as S3 allows: say what was written
            digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
            return ObjectInfo(key, len(data), digest, datetime.now(timezone.utc))

    def put_if_absent(self, bucket: str, key: str, data: bytes) -> bool:
        # a taken key costs one lstat, not a temporary file (the link below still decides a race)
        path = self._path(bucket, key)
        if os.path.lexists(path):
            return False
        return self._place(bucket, key, data, exclusive=True, path=path) is not None

    def _place(self, bucket: str, key: str, data: bytes, exclusive: bool, path: Path | None = None) -> Path | None:
        """The one write path: ``data`` into a temporary file, moved into place -- over any
        object (``os.replace``), or, ``exclusive``, only where none is (``os.link`` fails
        atomically when the target exists: then None)."""
        path = path or self._path(bucket, key)
        try:
            tmp = self._write_tmp(bytes(data))
        except OSError as exc:
            raise _write_error(exc, bucket, key) from None
        attempt = 0
        try:
            while True:
                attempt += 1
                try:
                    (os.link if exclusive else os.replace)(tmp, path)
                    return path
                except FileExistsError:
                    if exclusive:
                        return None
                    raise
                except (FileNotFoundError, NotADirectoryError):  # no folder yet (or pruned), or an object in the way
                    if attempt == 4:
                        raise
                    self._make_parent(path, bucket, key)
                except IsADirectoryError:
                    raise StorageError(
                        f"cannot write '{key}' in bucket '{bucket}': a folder of that name holds other objects "
                        "(this backend keeps keys as files: 'a' and 'a/b' cannot both exist)"
                    ) from None
        except OSError as exc:
            raise _write_error(exc, bucket, key) from None
        finally:
            try:
                os.unlink(tmp)  # still there after a link, or after a failed move
            except FileNotFoundError:
                pass

    def _make_parent(self, path: Path, bucket: str, key: str) -> None:
        """Create the key's folder; a clear error when an object holds one of its names.

        A concurrent delete prunes empty folders, so ``mkdir`` can see a folder exist and
        then vanish (it raises FileExistsError with no object in the way): that is retried;
        only an object holding a name is an error."""
        for _ in range(5):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                return
            except (FileExistsError, NotADirectoryError):
                holder = next((p for p in [path.parent, *path.parent.parents] if p.is_file()), None)
                if holder is None:
                    continue  # the folder was pruned under us: make it again
                taken = holder.relative_to(self.bucket_path(bucket)).as_posix()
                raise StorageError(
                    f"cannot write '{key}' in bucket '{bucket}': the object '{taken}' exists "
                    "(this backend keeps keys as files: 'a' and 'a/b' cannot both exist)"
                ) from None
        path.parent.mkdir(parents=True, exist_ok=True)

    def get(self, bucket: str, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        path = self._existing(bucket, key)
        try:
            with open(path, "rb") as fh:
                if byte_range is None:
                    return fh.read()
                start, end = byte_range
                fh.seek(start)
                return fh.read(max(0, end - start + 1))
        except FileNotFoundError:  # deleted since _existing() looked
            raise NoSuchKeyError(bucket, key) from None
        except OSError as exc:
            raise _os_error(exc, "read", bucket, key) from None

    def head(self, bucket: str, key: str) -> ObjectInfo:
        try:
            return self._info(key, self._existing(bucket, key))
        except FileNotFoundError:  # deleted since _existing() looked
            raise NoSuchKeyError(bucket, key) from None
        except OSError as exc:
            raise _os_error(exc, "read", bucket, key) from None

    def list(self, bucket: str, prefix: str = "", start_after: str = "") -> Iterator[ObjectInfo]:
        base = self.bucket_path(bucket)
        validate_prefix(prefix)
        if not base.is_dir():
            raise NoSuchBucketError(bucket)
        # walk only the folder the prefix points into
        folder = prefix.rpartition("/")[0] + "/" if "/" in prefix else ""
        found: list[tuple[str, str]] = []
        walk(os.path.join(str(base), folder) if folder else str(base), folder, prefix, start_after, found)
        for key, path in sorted(found):
            try:
                yield self._info(key, path, lazy=True)
            except FileNotFoundError:  # deleted while listing
                continue

    def delete(self, bucket: str, key: str) -> None:
        path = self._path(bucket, key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except IsADirectoryError:
            raise StorageError(f"'{key}' in bucket '{bucket}' is a folder, not an object") from None
        except OSError as exc:
            raise _os_error(exc, "delete", bucket, key) from None
        self._prune(path.parent, self.bucket_path(bucket))

    def delete_many(self, bucket: str, keys: Sequence[str]) -> None:
        """Each folder is checked once (no link on the way leads out of the bucket), all
        before anything is deleted; then its objects are unlinked (a link named by a key
        is removed itself, never what it points to) and it is pruned once, if empty."""
        base = self.bucket_path(bucket)
        folders: dict[str, list[str]] = {}
        for key in keys:
            folder, _, name = _check_segments(validate_key(key)).rpartition("/")
            folders.setdefault(folder, []).append(name)
        for folder, names in folders.items():
            if not self._inside(bucket, folder.split("/") if folder else []):
                raise _leads_out(bucket, f"{folder}/{names[0]}")
        for folder, names in folders.items():
            where = os.path.join(str(base), folder) if folder else str(base)
            for name in names:
                try:
                    os.unlink(os.path.join(where, name))
                except FileNotFoundError:
                    continue
                except IsADirectoryError:
                    raise StorageError(f"'{folder}/{name}' in bucket '{bucket}' is a folder, not an object") from None
                except OSError as exc:
                    raise _os_error(exc, "delete", bucket, f"{folder}/{name}".lstrip("/")) from None
            self._prune(Path(where), base)

    def create_bucket(self, bucket: str) -> None:
        self.bucket_path(bucket).mkdir(parents=True, exist_ok=True)

    def bucket_exists(self, bucket: str) -> bool:
        return self.bucket_path(bucket).is_dir()

    def presign(self, bucket: str, key: str, method: str = "GET", expires: int = 3600) -> str | None:
        """The object's ``file://`` URL: only processes on this machine (the local VMs) can
        use it, and they may read, write or delete it (``expires`` does not apply)."""
        check_presign_method(method)
        return self._path(bucket, key).as_uri()

    # helpers -------------------------------------------------------------------
    def _existing(self, bucket: str, key: str) -> Path:
        path = self._path(bucket, key)
        try:
            present = path.is_file()
        except OSError as exc:
            raise _os_error(exc, "read", bucket, key) from None
        if not present:
            if not self.bucket_path(bucket).is_dir():
                raise NoSuchBucketError(bucket)
            raise NoSuchKeyError(bucket, key)
        return path

    @staticmethod
    def _info(key: str, path: Path | str, data: bytes | None = None, lazy: bool = False) -> ObjectInfo:
        """The object's info; ``lazy`` (a listing): its etag is read only if asked for."""
        st = os.stat(path)
        modified = datetime.fromtimestamp(st.st_mtime, timezone.utc)
        info = _FileInfo(key, st.st_size, None, modified, path=path)
        if data is not None:
            object.__setattr__(info, "_etag", hashlib.md5(data, usedforsecurity=False).hexdigest())
        elif not lazy:
            info.etag  # noqa: B018 - read now: a head reports a read error itself
        return info

    @staticmethod
    def _prune(folder: Path, stop: Path) -> None:
        while folder != stop and stop in folder.parents:
            try:
                folder.rmdir()
            except OSError:  # not empty, or already gone
                return
            folder = folder.parent


class _FileInfo(ObjectInfo):
    """An object's info whose ``etag`` (the file's MD5, as S3 gives for a single-part
    object) is computed when first read: a listing or head that wants names, sizes or
    times reads no file (a queue polled every few milliseconds would otherwise hash
    every object under its prefix each time)."""

    def __init__(self, key: str, size: int, etag: str | None, last_modified: datetime, *, path: Path | str | None = None):
        fields = {"key": key, "size": size, "last_modified": last_modified, "_file": path, "_etag": etag}
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    @property
    def etag(self) -> str:
        cached = self.__dict__.get("_etag")
        if cached is None:
            digest = hashlib.md5(usedforsecurity=False)
            try:
                with open(self.__dict__["_file"] or os.devnull, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        digest.update(chunk)
            except FileNotFoundError:  # deleted since it was listed: what S3 reports of no content
                digest = hashlib.md5(b"", usedforsecurity=False)
            except OSError as exc:  # said without the path: it would reveal the storage root
                raise StorageError(f"cannot read object '{self.key}': {exc.strerror or type(exc).__name__}") from None
            cached = digest.hexdigest()
            object.__setattr__(self, "_etag", cached)
        return cached
