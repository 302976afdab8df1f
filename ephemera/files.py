"""Writing files that hold secrets: owner-only (0600) from the first byte, atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_private(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` readable and writable by the owner only (mode 0600).

    The content goes to a new temporary file in the same folder (created 0600, so no
    other user can ever open it) that then replaces ``path``: a reader sees the old
    file or the whole new one. Missing parent folders are created. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else bytes(data)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.chmod(tmp, 0o600)  # mkstemp already does; say it where it matters
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path
