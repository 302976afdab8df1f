"""Starting and stopping an agent process (the local stack's "VM", a cloud VM's unit).

``start_agent`` launches the agent detached (its own session, its own log), returns
once the agent has written its pid file, and raises :class:`AgentStartError` with the
log tail if it dies first. ``stop_agent`` is the destroy side: quiet and fast when the
agent is already gone; SIGTERM to the agent alone (it stops its services itself, so no
call is reported as a crashed worker), SIGKILL to its whole process group after the
timeout or for any straggler once it is gone; it confirms the process is gone. A
process sent SIGKILL is dying, not surviving: on a loaded machine its exit can take
seconds (all its threads must be scheduled, a write in progress must end), so the
wait after SIGKILL is long and bounded, reaps it where it is our own child, and counts
a zombie as gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ephemera.errors import EphemeraError
from ephemera.vm.pids import is_agent_process, read_pid, remove_pid_file


class AgentStartError(EphemeraError):
    code = "AGENT_START_FAILED"


def start_agent(
    config_path: str, worker: int, pid_file: str, log_file: str, timeout: float = 30.0, python: str | None = None
) -> int:
    """Launch a detached agent; return its pid once it has written ``pid_file``."""
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    remove_pid_file(pid_file)
    cmd = [
        python or sys.executable,
        "-m",
        "ephemera.vm",
        "serve",
        "--config",
        config_path,
        "--worker",
        str(worker),
        "--pid-file",
        pid_file,
    ]
    with open(log_file, "ab") as logfh:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=logfh, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if read_pid(pid_file) == proc.pid:
            return proc.pid
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    raise AgentStartError(f"agent worker {worker} failed to start (exit {proc.poll()}):\n{log_tail(log_file)}")


KILL_WAIT = 30.0  # seconds a SIGKILLed agent may take to finish exiting on a busy machine


def stop_agent(pid_file: str, timeout: float = 10.0, kill_wait: float = KILL_WAIT) -> bool:
    """Stop the agent of ``pid_file`` and confirm it is gone; True once it is (also when
    it was already gone), False if it was still exiting ``kill_wait`` seconds after
    SIGKILL (a destroy retried later finds it gone)."""
    pid = read_pid(pid_file)
    if pid is None or not is_agent_process(pid):
        if pid is not None:
            kill_orphaned_session(pid)
        remove_pid_file(pid_file)
        return True
    try:
        os.kill(pid, signal.SIGTERM)  # the agent alone: it stops its services before their workers die
    except ProcessLookupError:
        pass
    if not _wait_gone(pid, timeout):
        _signal_group(pid, signal.SIGKILL)
        if not _wait_gone(pid, kill_wait):
            return False
    _signal_group(pid, signal.SIGKILL, fallback=False)  # stragglers of its session (the agent leads it)
    remove_pid_file(pid_file)
    return True


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def session_members(sid: int) -> list[int]:
    """Live processes of session ``sid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields and fields[0] != "Z" and fields[3] == str(sid):
                found.append(int(entry))
    return found


def kill_orphaned_session(leader: int, timeout: float = 5.0) -> list[int]:
    """SIGKILL what is left of the session of an agent (``leader``) that is gone; the pids killed.

    Only while no live process has the leader's pid: a session id stays reserved as
    long as any member lives, so then every member is the agent's own orphan; a live
    process with that pid is someone else's (the pid was reused) and nothing is done."""
    fields = _stat(leader)
    if fields is not None and fields[0] != "Z":
        return []
    members = session_members(leader)
    for member in members:
        try:
            os.kill(member, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + timeout
    while members and session_members(leader) and time.monotonic() < deadline:
        time.sleep(0.02)
    return members


def _signal_group(pid: int, sig: int, fallback: bool = True) -> None:
    """Signal the agent's process group; with ``fallback`` the pid alone if there is no such group."""
    try:
        os.killpg(pid, sig)  # the agent leads its own session: take its children too
    except (ProcessLookupError, PermissionError):
        if fallback:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass


def _reaped(pid: int) -> bool:
    """False while ``pid`` is our own child that has not exited; once it has, its exit
    status is collected here (no zombie is left). True for a process that is not our child."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child: its parent (or init) reaps it
        return True
    return done == pid


def _wait_gone(pid: int, timeout: float) -> bool:
    """Whether ``pid`` is no longer a live agent within ``timeout`` seconds (a zombie is
    gone; our own child only once it is reaped)."""
    deadline = time.monotonic() + timeout
    while True:
        if _reaped(pid) and not is_agent_process(pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def log_tail(path: str, n: int = 30) -> str:
    """The last ``n`` lines of a log file ('' if unreadable)."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""
