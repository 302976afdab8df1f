"""``lithops_bridge.storage.cloud_proxy``: files and folders over object storage, as Lithops'
``lithops.storage.cloud_proxy``.

``from lithops_bridge.storage.cloud_proxy import os, open`` gives an ``open`` and an
``os`` whose file functions work on the keys of the configured storage bucket (a key
is a path; ``a/b`` is in folder ``a``): ``open(path, mode)`` (``r``, ``w``, ``a``, with
``b`` for bytes; a written file is stored when closed), ``os.listdir``, ``os.walk``,
``os.remove``, ``os.makedirs``/``os.mkdir`` (no-ops: folders exist through their
keys), ``os.path.exists``/``isfile``/``isdir``; every other attribute is the real
``os`` (``os.path`` the real ``os.path``). Keys of the bridge's own data
(``lithops.*``) are hidden. The default storage is the default Lithops config's,
made on first use; ``CloudFileProxy(CloudStorage(config))`` and
``cloud_open(path, mode, cloud_storage=...)`` use another, and both pickle by config,
so a function can take them as arguments and use them on its worker.
"""

from __future__ import annotations

import io
import os as _os
import posixpath
import threading
from typing import Any, Callable, Iterator

from lithops_bridge.storage import Storage
from lithops_bridge.storage.utils import StorageNoSuchKeyError

HIDDEN_PREFIXES = ("lithops.jobs", "lithops.logs", "lithops.runtimes")  # the executors' own keys


class CloudFileNotFoundError(StorageNoSuchKeyError, FileNotFoundError):
    """Reading a key that does not exist: Lithops' StorageNoSuchKeyError, and a FileNotFoundError."""

    def __init__(self, bucket: str, key: str):
        StorageNoSuchKeyError.__init__(self, bucket, key)
        self.errno, self.strerror, self.filename = 2, self.message, key


def _visible(key: str) -> bool:
    return not key.startswith(HIDDEN_PREFIXES)


def _key(path: str) -> str:
    """A path as a key: no leading slash, no ``.`` or empty names."""
    norm = posixpath.normpath("/" + str(path)).lstrip("/")
    return "" if norm == "." else norm


class CloudStorage(Storage):
    """A picklable Storage on the bucket of a Lithops config (a path to a YAML file, a
    full config dict, a storage config, or None for the default config)."""

    def __init__(self, config: str | dict | None = None):
        from lithops_bridge.config import default_storage_config, extract_storage_config, load_yaml_config

        if isinstance(config, str):
            storage_config = extract_storage_config(default_storage_config(config_data=load_yaml_config(config)))
        elif isinstance(config, dict) and "lithops" in config:
            storage_config = extract_storage_config(default_storage_config(config_data=config))
        elif isinstance(config, dict):
            storage_config = config
        else:
            storage_config = extract_storage_config(default_storage_config())
        super().__init__(storage_config=storage_config)

    def __getstate__(self) -> dict:
        return {"config": self.config}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["config"])

    def put_data(self, key: str, data: str | bytes) -> None:
        self.put_object(self.bucket, key, data)

    def get_data(self, key: str) -> bytes:
        return self.get_object(self.bucket, key)

    def delete_data(self, key: str) -> None:
        self.delete_object(self.bucket, key)

    def list_bucket_keys(self, prefix: str | None = None) -> list[str]:
        return self.list_keys(self.bucket, prefix)


_default: CloudStorage | None = None
_default_lock = threading.Lock()


def default_storage() -> CloudStorage:
    """The CloudStorage of the default Lithops config (made once, on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = CloudStorage()
        return _default


class _StoredOnClose:
    """Mixin: the buffer's content is stored when the file is closed (once)."""

    def _setup(self, store: Callable[[Any], None]) -> None:
        self._store = store
        self._stored = False

    def close(self) -> None:
        if not self.closed and not self._stored:
            self._stored = True
            self._store(self.getvalue())
        super().close()


class DelayedBytesBuffer(_StoredOnClose, io.BytesIO):
    def __init__(self, store: Callable[[bytes], None], initial: bytes = b""):
        io.BytesIO.__init__(self, initial)
        self.seek(0, io.SEEK_END)
        self._setup(store)


class DelayedStringBuffer(_StoredOnClose, io.StringIO):
    def __init__(self, store: Callable[[str], None], initial: str = ""):
        io.StringIO.__init__(self, initial)
        self.seek(0, io.SEEK_END)
        self._setup(store)


def cloud_open(filename: str, mode: str = "r", cloud_storage: CloudStorage | None = None):
    """A file over one object: read (``r``), write (``w``: stored on close) or append (``a``)."""
    storage = cloud_storage or default_storage()
    kind = set(mode) - {"b", "t"}
    if len(kind) != 1 or kind - {"r", "w", "a"} or ("b" in mode and "t" in mode):
        raise ValueError(f"invalid mode {mode!r} for a cloud file: use r, w or a, with b for bytes")
    key, binary = _key(filename), "b" in mode
    if "r" in kind:
        try:
            data = storage.get_data(key)
        except StorageNoSuchKeyError:
            raise CloudFileNotFoundError(storage.bucket, key) from None
        return io.BytesIO(data) if binary else io.StringIO(data.decode())
    initial = b""
    if "a" in kind:
        try:
            initial = storage.get_data(key)
        except StorageNoSuchKeyError:
            pass

    def store(value) -> None:
        storage.put_data(key, value)

    return DelayedBytesBuffer(store, initial) if binary else DelayedStringBuffer(store, initial.decode())


class _path:
    """``os.path`` over the bucket (exists, isfile, isdir); the rest is the real ``os.path``."""

    def __init__(self, proxy: "CloudFileProxy"):
        self._proxy = proxy

    def __getattr__(self, name: str) -> Any:
        return getattr(_os.path, name)

    def isfile(self, path: str) -> bool:
        key = _key(path)
        if not key:
            return False
        try:
            self._proxy._storage.head_object(self._proxy._storage.bucket, key)
            return _visible(key)
        except StorageNoSuchKeyError:
            return False

    def isdir(self, path: str) -> bool:
        prefix = _key(path)
        prefix = prefix + "/" if prefix else ""
        return any(_visible(k) for k in self._proxy._storage.list_bucket_keys(prefix))

    def exists(self, path: str) -> bool:
        return self.isfile(path) or self.isdir(path)


class CloudFileProxy:
    """``os`` over the bucket of a CloudStorage (the default storage if none)."""

    def __init__(self, cloud_storage: CloudStorage | None = None):
        self._given = cloud_storage
        self.path = _path(self)

    @property
    def _storage(self) -> CloudStorage:
        return self._given or default_storage()

    def __getattr__(self, name: str) -> Any:
        return getattr(_os, name)

    def __getstate__(self) -> dict:
        return {"storage": self._storage}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["storage"])

    def open(self, filename: str, mode: str = "r"):
        return cloud_open(filename, mode=mode, cloud_storage=self._storage)

    def listdir(self, path: str = "", suffix_dirs: bool = False) -> list[str]:
        """Names directly under ``path``; folders end with ``/`` when ``suffix_dirs``."""
        prefix = _key(path)
        prefix = prefix + "/" if prefix else ""
        names = set()
        for key in self._storage.list_bucket_keys(prefix):
            if not _visible(key):
                continue
            first, sep, _rest = key[len(prefix) :].partition("/")
            names.add(first + "/" if sep and suffix_dirs else first)
        if prefix and not names and not self.path.isdir(path):
            raise FileNotFoundError(2, "No such folder in the storage bucket", path)
        return sorted(names)

    def walk(self, top: str, topdown: bool = True, onerror=None, followlinks: bool = False) -> Iterator[tuple]:
        try:
            entries = self.listdir(top, suffix_dirs=True)
        except FileNotFoundError as exc:
            if onerror is not None:
                onerror(exc)
            return
        dirs = [e[:-1] for e in entries if e.endswith("/")]
        files = [e for e in entries if not e.endswith("/")]
        if topdown:
            yield top, dirs, files
        for name in dirs:
            yield from self.walk(posixpath.join(top, name), topdown, onerror, followlinks)
        if not topdown:
            yield top, dirs, files

    def remove(self, path: str) -> None:
        self._storage.delete_data(_key(path))

    unlink = remove

    def mkdir(self, *args: Any, **kwargs: Any) -> None:
        """Folders exist through the keys in them: nothing to do."""

    def makedirs(self, *args: Any, **kwargs: Any) -> None:
        """Folders exist through the keys in them: nothing to do."""


os = CloudFileProxy()  # noqa: A001 - Lithops' name


def open(filename: str, mode: str = "r"):  # noqa: A001 - Lithops' name
    """``open`` over the default storage's bucket."""
    return cloud_open(filename, mode=mode)
