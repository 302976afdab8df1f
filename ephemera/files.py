"""Writing files that hold secrets: owner-only from the first byte, atomically, never
through a symbolic link; and the folders they go into, never another's."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from ephemera.errors import EphemeraError


class UnsafePathError(EphemeraError):
    """A file or folder a command would write is a symbolic link or someone else's."""

    code = "UNSAFE_PATH"


def write_private(path: str | os.PathLike, data: str | bytes, mode: int = 0o600) -> Path:
    """Write ``data`` to ``path`` with owner-only ``mode`` (default 0600).

    The content goes to a new temporary file in the same folder (created 0600, so no
    other user can ever open it) that then replaces ``path``: a reader sees the old
    file or the whole new one. A symbolic link at ``path`` is refused
    (:class:`UnsafePathError`): the rename would replace the link, not write its
    target, but a link there is someone's attempt or mistake and is named, not
    silently dropped. Missing parent folders are created. Returns the path."""
    if mode & 0o077:
        raise ValueError(f"write_private: mode {oct(mode)} lets others in")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        raise UnsafePathError(
            f"refusing to write '{path}': it is a symbolic link (to '{os.readlink(path)}'); "
            "remove the link or choose another path"
        )
    payload = data.encode() if isinstance(data, str) else bytes(data)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            os.fchmod(fh.fileno(), mode)  # mkstemp made it 0600; a script wants 0700
        os.replace(tmp, path)  # rename(2) replaces a link planted meanwhile, never its target
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def private_dir(path: str | os.PathLike, option: str) -> Path:
    """A folder for owner-only files, named on the command line by ``option``.

    A missing folder is created with mode 0700. An existing one is used as it is, its
    mode never changed (``--out /tmp`` must not make /tmp private), and only if it is a
    folder owned by the caller that no one else may write to: in a folder others can
    write (like /tmp), they could plant or swap the files the command writes."""
    path = Path(path)
    try:
        path.mkdir(mode=0o700, parents=True)
        return path
    except FileExistsError:
        pass
    info = os.lstat(path)
    fix = f"pass {option} a new folder (it is created mode 0700) or one of yours that only you can write"
    if not stat.S_ISDIR(info.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a folder"
        raise UnsafePathError(f"{option} '{path}' is {kind}; {fix}")
    if info.st_uid != os.geteuid():
        raise UnsafePathError(f"{option} '{path}' belongs to another user (uid {info.st_uid}); {fix}")
    if info.st_mode & 0o022:
        raise UnsafePathError(f"{option} '{path}' can be written by others (mode {stat.S_IMODE(info.st_mode):o}); {fix}")
    return path
