"""Child processes die with the process that owns them: a lifeline pipe.

The owner (``ephemera up``'s runtime; a VM's agent) holds the write end of one pipe for
its whole life and never hands it to a child; each bound child (an action process, a
warm zygote and each worker it forks; the agent's workload process) gets the read end,
named by ``EPHEMERA_LIFELINE_FD``, and watches it in a daemon thread. When the owner
dies, however (SIGKILL included), the kernel closes the write end, the read returns
EOF, and the child SIGKILLs its own process group: itself and whatever it started (a
Terraform subprocess; in an agent's group, its forkserver, resource tracker and pool
workers), so an orphaned apply can neither outlive ``timeouts.action`` nor run
unsupervised. A pipe rather than ``PR_SET_PDEATHSIG``: that signal fires when the
*thread* that forked the child ends, and owners start children from pool threads.
Agents themselves (the local "VMs") are not bound to the runtime: they are resources,
which the reaper destroys.
"""

from __future__ import annotations

import os
import signal
import threading

LIFELINE_ENV = "EPHEMERA_LIFELINE_FD"  # the read end's fd number, in an action process's environment
LIFELINE_THREAD = "ephemera-lifeline"  # the watcher thread's name (a warm worker does not count it as left running)
_lock = threading.Lock()
_pipe: tuple[int, int] | None = None


def lifeline_fd() -> int:
    """Runtime side: the read end to pass to children (the pipe is made once per process)."""
    global _pipe
    with _lock:
        if _pipe is None:
            _pipe = os.pipe()  # both ends non-inheritable: only pass_fds hands the read end on
        return _pipe[0]


def child_binding(env: dict) -> tuple[dict, tuple[int, ...]]:
    """(environment, fds to pass) that bind a child to this process's lifeline."""
    fd = lifeline_fd()
    return {**env, LIFELINE_ENV: str(fd)}, (fd,)


def _die_with_group() -> None:
    try:
        os.killpg(os.getpgrp(), signal.SIGKILL)
    finally:
        os._exit(1)


def bind_to_owner(fd: int | None = None) -> threading.Thread | None:
    """Child side: die with the owner once the lifeline ``fd`` (default: from the
    environment) reaches EOF. Call again after a fork: threads do not survive one."""
    if fd is None:
        value = os.environ.get(LIFELINE_ENV, "")
        if not value.isdigit():
            return None
        fd = int(value)
    try:
        os.fstat(fd)
    except OSError:
        return None  # not passed to us (e.g. a process started by hand)
    os.set_inheritable(fd, False)  # the action's own subprocesses need not hold it

    def watch() -> None:
        while True:
            try:
                if os.read(fd, 1) == b"":
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        _die_with_group()

    thread = threading.Thread(target=watch, name=LIFELINE_THREAD, daemon=True)
    thread.start()
    return thread
