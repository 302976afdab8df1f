"""Files written in place, reported once they are complete.

A file that another program creates in a watched bucket folder (``cp``, an editor, a
writer that takes its time) is seen when it is created, still empty. Where the
filesystem reports a writer's close (Linux inotify's ``IN_CLOSE_WRITE``) the watcher
fires then; a created file that no writer touches afterwards (a hard link, a file
moved in by a tool that creates it elsewhere) is complete when created and fires once
it has been quiet for ``quiet`` seconds. Where no close is reported (macOS, Windows),
every created or modified file waits until its size and mtime have been still for
``quiet`` seconds.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable, Optional

log = logging.getLogger("ephemera.runtime.watcher")
QUIET_SECONDS = 0.5  # how long a created file must stay unchanged to be taken as complete without a close


def _signature(path: str) -> Optional[tuple[int, int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class Settler:
    """Holds created (and, without close events, modified) paths until they are quiet."""

    def __init__(self, ready: Callable[[str], None], quiet: float = QUIET_SECONDS):
        self.ready = ready  # called with a path once it is complete
        self.quiet = quiet  # seconds without a change
        self._pending: dict[str, tuple[float, Optional[tuple[int, int, int]]]] = {}  # path -> (due, signature)
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="ephemera-settle", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._pending.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def hold(self, path: str) -> None:
        """Report ``path`` once it has not changed for ``quiet`` seconds (again from now if held)."""
        with self._cond:
            self._pending[path] = (time.monotonic() + self.quiet, _signature(path))
            self._cond.notify_all()

    def drop(self, path: str) -> None:
        """Stop holding ``path``: its writer's close (or a move) reports it."""
        with self._cond:
            self._pending.pop(path, None)

    def _due(self) -> list[str]:
        now = time.monotonic()
        ready = []
        for path, (due, sig) in list(self._pending.items()):
            if due > now:
                continue
            current = _signature(path)
            if current is None:
                del self._pending[path]  # gone: nothing to report
            elif current == sig:
                del self._pending[path]
                ready.append(path)
            else:
                self._pending[path] = (now + self.quiet, current)  # still being written
        return ready

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopped:
                    return
                due = self._due()
                if not due:
                    wait = min((d for d, _ in self._pending.values()), default=None)
                    self._cond.wait(None if wait is None else max(0.01, wait - time.monotonic()))
                    continue
            for path in due:
                try:
                    self.ready(path)
                except Exception:  # never let one path stop the thread
                    log.exception("cannot handle the settled file %r", path)
