"""Warm action processes, child side: a zygote per action, and the workers it forks.

The runtime starts ``python -m ephemera.runtime.invoker --warm <module:function>
<socket-fd>`` once per action target. This *zygote* imports the action's module (so
its workers start with everything loaded) and then only forks: for each ``spawn``
message on its socket (which carries the new worker's own socket) it forks a worker
and later reports the worker's exit code (``{"exited": pid, "code": n}``). A forked
worker leads its own session (a timeout kills its whole process group) and serves
one invocation at a time on its socket: each request carries the invocation's
environment additions and four pipes (params in; stdout, stderr and the result
out), so every invocation has its own logs and result exactly as a fresh process
does; between invocations stdout and stderr point to /dev/null, and the environment
and working directory are put back. A worker whose action left a thread running
exits after that invocation (the thread could write into the next one's logs). Nothing secret is in argv or the environment:
params and config travel through the pipes. A zygote or worker whose runtime is gone
sees its socket close and exits.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import sys
import threading

from ephemera.lifeline import LIFELINE_THREAD, bind_to_owner
from ephemera.runtime.invoker import load_action, run_invocation


def zygote_main(target: str, sock_fd: int) -> int:
    os.set_inheritable(sock_fd, False)
    control = socket.socket(fileno=sock_fd)
    func, _failure = load_action(target)  # a module that fails to import is tried again per invocation
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    sel = selectors.DefaultSelector()
    sel.register(control, selectors.EVENT_READ, "control")
    sel.register(wake_r, selectors.EVENT_READ, "child")
    while True:
        for key, _ in sel.select():
            if key.data == "child":
                try:
                    os.read(wake_r, 4096)
                except BlockingIOError:
                    pass
                if not _report_exits(control):
                    return 0
                continue
            try:
                msg, fds, _flags, _addr = socket.recv_fds(control, 1024, 1)
            except OSError:
                return 0
            if not msg:
                return 0  # the runtime is gone
            nice = int(json.loads(msg).get("nice") or 0)
            for fd in fds:
                pid = os.fork()
                if pid == 0:  # the worker
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    sel.close()
                    for own in (wake_r, wake_w):
                        os.close(own)
                    control.close()
                    os.setsid()
                    bind_to_owner()  # the worker's own watcher (threads do not survive fork)
                    if nice:
                        os.nice(nice)
                    os._exit(_serve(target, func, fd))
                os.close(fd)


def _report_exits(control: socket.socket) -> bool:
    """Reap finished workers and tell the runtime their exit codes; False if it is gone."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid == 0:
            return True
        try:
            control.send(json.dumps({"exited": pid, "code": os.waitstatus_to_exitcode(status)}).encode())
        except OSError:
            return False


def _serve(target: str, func, sock_fd: int) -> int:
    """A worker: one invocation per request until the runtime closes the socket."""
    sock = socket.socket(fileno=sock_fd)
    devnull = os.open(os.devnull, os.O_RDWR)
    home = os.getcwd()
    try:
        sock.send(json.dumps({"ready": os.getpid()}).encode())
        while True:
            msg, fds, _flags, _addr = socket.recv_fds(sock, 65536, 4)
            if not msg or len(fds) != 4:
                return 0
            _invoke(target, func, json.loads(msg), fds, devnull, home)
            # a thread the action left running would write into the next invocation's logs
            reusable = not [t for t in threading.enumerate() if t is not threading.main_thread() and t.name != LIFELINE_THREAD]
            sock.send(json.dumps({"reusable": reusable}).encode())
            if not reusable:
                return 0
    except OSError:
        return 0


def _invoke(target: str, func, header: dict, fds: list[int], devnull: int, home: str) -> None:
    params_fd, out_fd, err_fd, result_fd = fds
    for fd in (params_fd, result_fd):
        os.set_inheritable(fd, False)  # the action's own subprocesses must not hold them
    env = {str(k): str(v) for k, v in (header.get("env") or {}).items()}
    saved = {k: os.environ.get(k) for k in env}
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    os.close(out_fd)
    os.close(err_fd)
    os.environ.update(env)
    try:
        with os.fdopen(params_fd, "rb") as fh:
            raw = fh.read()
        run_invocation(target, raw, result_fd, func)
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os.dup2(devnull, 1)  # the invocation's pipes close here: its logs are complete
        os.dup2(devnull, 2)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        try:
            os.chdir(home)
        except OSError:
            pass
