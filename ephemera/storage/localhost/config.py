"""Config of the localhost backend: the ``localhost`` section (``root``, default ``<home>/storage``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from pydantic import Field

from ephemera.sections import Section


class LocalhostSection(Section):
    """A directory: each bucket is a folder under ``root``."""

    root: Optional[str] = Field(None, description="directory under which each bucket is a folder; default <home>/storage")


def storage_root(config) -> Path:
    """The root directory of a loaded config (created)."""
    root = config["localhost"]["root"]
    path = Path(root).expanduser().resolve() if root else config.home / "storage"
    path.mkdir(parents=True, exist_ok=True)
    return path
