"""The action ``bench/idle.py`` binds to its probe triggers: it only says when it started.

It imports what the real actions import (``ephemera.actions.apply``, ``.destroy``), so
a fresh process pays the same start-up before the probe runs as before an apply."""

from __future__ import annotations

import time

import ephemera.actions.apply  # noqa: F401  (the real actions' import weight)
import ephemera.actions.destroy  # noqa: F401


def main(params: dict) -> dict:
    return {"ok": True, "entered": time.time()}
