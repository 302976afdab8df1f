"""Config of the localhost backend: the ``localhost`` section (``root``, default ``<home>/storage``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

from pydantic import Field

from ephemera.sections import Section

if TYPE_CHECKING:
    from ephemera.config import Config


class LocalhostSection(Section):
    """A directory: each bucket is a folder under ``root``."""

    root: Optional[str] = Field(None, description="directory under which each bucket is a folder; default <home>/storage")


def storage_root(config: Config) -> Path:
    """The root directory of a loaded config (created)."""
    root = config.section(LocalhostSection).root
    path = Path(root).expanduser().resolve() if root else config.home / "storage"
    path.mkdir(parents=True, exist_ok=True)
    return path
