"""The Ephemera home: local state that is not in object storage.

It holds the localhost storage root by default, Terraform working directories and
state per workspace, and the pid files and logs of local "VMs". ``EPHEMERA_HOME``
overrides the config's ``home``, which defaults to ``~/.ephemera``.
"""

from __future__ import annotations

import os
from pathlib import Path


def ephemera_home(configured: str | None = None) -> Path:
    """The home directory (created if missing)."""
    raw = os.environ.get("EPHEMERA_HOME") or configured or "~/.ephemera"
    home = Path(raw).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home
