"""Worker processes end with the process that started them.

A pool worker whose parent was killed (a test or benchmark session interrupted, an
agent SIGKILLed) would otherwise wait on its task queue forever. ``exit_with_parent``
starts a daemon thread that exits the worker once its parent is gone (the worker is
re-parented, so ``os.getppid()`` changes). A thread rather than ``PR_SET_PDEATHSIG``:
that signal fires when the *thread* that forked the worker ends, and pools fork from
whatever thread submits first.
"""

from __future__ import annotations

import os
import threading

CHECK_EVERY = 1.0  # seconds between checks of the parent


def exit_with_parent(parent_pid: int, interval: float = CHECK_EVERY) -> threading.Thread:
    """Exit this process (code 1, no cleanup) as soon as ``parent_pid`` is no longer its parent."""

    def watch() -> None:
        stop = threading.Event()
        while not stop.wait(interval):
            if os.getppid() != parent_pid:
                os._exit(1)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot) from /proc, None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]


def exit_with_owner(owner_pid: int, kill_parent: bool = False, interval: float = CHECK_EVERY) -> threading.Thread:
    """Exit this process once ``owner_pid`` (not its parent: e.g. the agent above a
    forkserver) is gone; with ``kill_parent`` first kill the parent (that forkserver),
    which would otherwise stay behind idle."""
    born = _start_time(owner_pid)

    def watch() -> None:
        stop = threading.Event()
        while not stop.wait(interval):
            if _start_time(owner_pid) != born:
                if kill_parent:
                    try:
                        os.kill(os.getppid(), 9)
                    except OSError:
                        pass
                os._exit(1)

    thread = threading.Thread(target=watch, name="exit-with-owner", daemon=True)
    thread.start()
    return thread
