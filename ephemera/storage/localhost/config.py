"""Config of the localhost backend: ``localhost.root``, default ``<home>/storage``."""

from __future__ import annotations

from pathlib import Path

from ephemera.config import Config


def storage_root(config: Config) -> Path:
    root = config["localhost"]["root"]
    path = Path(root).expanduser().resolve() if root else config.home / "storage"
    path.mkdir(parents=True, exist_ok=True)
    return path
