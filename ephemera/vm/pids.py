"""Pid files of agent processes, and telling a live agent from a reused pid."""

from __future__ import annotations

import os
from pathlib import Path

# what an agent's command line contains (`python -m ephemera.vm serve ...`)
AGENT_CMDLINE_MARK = b"ephemera.vm"


def write_pid_file(path: str, pid: int) -> None:
    """Write ``pid`` to ``path`` atomically (a reader sees no half-written file)."""
    tmp = f"{path}.tmp"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "w") as fh:
        fh.write(str(pid))
    os.replace(tmp, path)


def read_pid(path: str) -> int | None:
    """The pid in ``path``, or None if the file is missing or unreadable."""
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def remove_pid_file(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def process_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` in /proc (R, S, D, Z, X, ...); None if unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def is_agent_process(pid: int) -> bool:
    """True if ``pid`` is alive and is an agent (guards against pid reuse). An exited
    process not yet reaped (a zombie, state Z, or X while it is being reaped) is gone."""
    if process_state(pid) in ("Z", "X"):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except PermissionError:
        return True  # /proc hides it: it exists
    except OSError:
        if Path("/proc/self").is_dir():
            return False  # /proc works and has no such process
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True  # no /proc: trust the pid
    if AGENT_CMDLINE_MARK not in cmdline:
        return False  # another program, or a zombie (its command line is empty)
    return process_state(pid) not in ("Z", "X")  # it may have exited since the first look


def agent_alive(pid_file: str) -> bool:
    """Whether the agent a pid file names is running."""
    pid = read_pid(pid_file)
    return pid is not None and pid > 0 and is_agent_process(pid)
