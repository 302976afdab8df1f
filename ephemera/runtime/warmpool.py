"""Warm action processes, runtime side: a pool of pre-imported workers per action target.

A :class:`WarmPool` owns one zygote (``warm``) for its target and the workers forked
from it, at most ``size`` at a time, each running one invocation at a time. A worker
that hits the timeout is killed with its process group, one that crashed is gone;
both are replaced on demand, and a worker is retired after ``max_uses``
invocations (or at once when its action left a thread running). The pool keeps
``spares`` idle workers ready while below ``size``, so a burst starts at once. Each invocation has its own pipes, so logs, result and timeout
are exactly those of a fresh process per invocation (``procio``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque

from ephemera.timeutil import now_utc
from ephemera.runtime.invoker import ACTION_CRASHED, error
from ephemera.runtime.procio import Outcome, exchange, kill_group, parse_result, timeout_outcome

log = logging.getLogger("ephemera.runtime.warm")
SPAWN_TIMEOUT_S = 60.0  # a zygote's first worker waits for its imports
MAX_EXITS_KEPT = 1024  # exit codes remembered per zygote
REPORT_TIMEOUT_S = 10.0  # a worker says whether it can be reused right after its result


class WarmError(RuntimeError):
    """A warm worker could not be started (its zygote is gone and cannot be restarted)."""


class Zygote:
    """The zygote process of one target: forks workers, reports their exit codes."""

    def __init__(self, target: str, env: dict):
        from ephemera.lifeline import child_binding

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        bound_env, lifeline = child_binding(env)  # the zygote and its workers die with this runtime
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ephemera.runtime.invoker", "--warm", target, str(theirs.fileno())],
                pass_fds=(theirs.fileno(), *lifeline),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                env=bound_env,
            )
        finally:
            theirs.close()
        self.sock = ours
        self.exits: dict[int, int] = {}  # worker pid -> exit code, as the zygote reaped them
        self.alive = True
        self._cond = threading.Condition()
        threading.Thread(target=self._read, name=f"ephemera-zygote-{self.proc.pid}", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                msg = self.sock.recv(4096)
            except OSError:
                msg = b""
            if not msg:
                with self._cond:
                    self.alive = False
                    self._cond.notify_all()
                return
            report = json.loads(msg)
            with self._cond:
                self.exits[int(report["exited"])] = int(report["code"])
                while len(self.exits) > MAX_EXITS_KEPT:  # retired workers' codes nobody asks for
                    self.exits.pop(next(iter(self.exits)))
                self._cond.notify_all()

    def spawn(self, nice: int = 0) -> "WarmWorker":
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            socket.send_fds(self.sock, [json.dumps({"spawn": 1, "nice": nice}).encode()], [theirs.fileno()])
        except OSError as exc:
            ours.close()
            raise WarmError(f"the zygote of this action is gone: {exc}") from None
        finally:
            theirs.close()
        ours.settimeout(SPAWN_TIMEOUT_S)
        try:
            ready = json.loads(ours.recv(4096) or b"{}")
        except (OSError, ValueError) as exc:
            ours.close()
            raise WarmError(f"a warm worker did not start: {exc}") from None
        ours.settimeout(None)
        if "ready" not in ready:
            ours.close()
            raise WarmError("a warm worker did not start (its zygote is stopping)")
        return WarmWorker(self, ours, int(ready["ready"]))

    def exit_code(self, pid: int, timeout: float = 2.0) -> int | None:
        """The worker's exit code once the zygote reaped it (None if not within ``timeout``)."""
        with self._cond:
            self._cond.wait_for(lambda: pid in self.exits or not self.alive, timeout)
            return self.exits.pop(pid, None)

    def close(self) -> None:
        self.sock.close()  # the zygote sees it and exits; its idle workers see their own sockets close
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            kill_group(self.proc.pid)
            self.proc.wait()


class WarmWorker:
    """One forked worker: one invocation at a time."""

    def __init__(self, zygote: Zygote, sock: socket.socket, pid: int):
        self.zygote, self.sock, self.pid = zygote, sock, pid
        self.uses = 0  # invocations served
        self.alive = True

    def invoke(self, params: dict, timeout: float, env: dict) -> Outcome:
        payload = json.dumps(params, default=str).encode()
        params_r, params_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        result_r, result_w = os.pipe()
        start = now_utc()
        try:
            socket.send_fds(self.sock, [json.dumps({"env": env}).encode()], [params_r, out_w, err_w, result_w])
        except OSError:
            self.alive = False  # gone while idle: the caller takes another worker
            for fd in (params_w, out_r, err_r, result_r):
                os.close(fd)
            raise
        finally:
            for fd in (params_r, out_w, err_w, result_w):  # the worker has its copies now
                os.close(fd)
        self.uses += 1
        logs, raw, timed_out = exchange(
            payload,
            params_w,
            out_r,
            err_r,
            result_r,
            time.monotonic() + timeout,
            lambda: self.pid in self.zygote.exits,
            end_on_result=True,
        )
        if timed_out:
            self.kill()
            return timeout_outcome(timeout, logs.result_lines(), start)
        exit_code = 0
        if not raw:  # the worker died without a result: its exit code tells how
            self.alive = False
            exit_code = self.zygote.exit_code(self.pid)
        elif not self._reusable():
            self.retire()
        status, result = parse_result(raw, exit_code)
        return Outcome(status, result, logs.result_lines(), start, now_utc(), exit_code)

    def _reusable(self) -> bool:
        """The worker's word after an invocation: whether it can serve another."""
        self.sock.settimeout(REPORT_TIMEOUT_S)
        try:
            return bool(json.loads(self.sock.recv(4096) or b"{}").get("reusable"))
        except (OSError, ValueError):
            return False
        finally:
            self.sock.settimeout(None)

    def kill(self) -> None:
        self.alive = False
        kill_group(self.pid)
        self.sock.close()

    def retire(self) -> None:
        self.alive = False
        self.sock.close()  # it exits when it sees the socket close


class WarmPool:
    """Pre-imported workers of one action target."""

    def __init__(self, target: str, env: dict, size: int, max_uses: int = 100, spares: int = 1, nice: int = 0):
        self.target, self.env = target, env
        self.nice = nice  # niceness of the workers (and of what they start)
        self.size = max(1, size)  # workers at most (one invocation each)
        self.max_uses = max(1, max_uses)  # invocations before a worker is retired
        self.spares = spares  # idle workers kept ready while below size
        self._idle: deque[WarmWorker] = deque()
        self._busy: set[WarmWorker] = set()
        self._count = 0  # idle + busy + being spawned
        self._cond = threading.Condition()
        self._zygote: Zygote | None = None
        self._closed = False

    def _zygote_now(self) -> Zygote:
        with self._cond:
            if self._zygote is None or not self._zygote.alive:
                self._zygote = Zygote(self.target, self.env)
            return self._zygote

    def _spawn(self) -> WarmWorker:
        try:
            return self._zygote_now().spawn(self.nice)
        except WarmError:
            with self._cond:
                self._zygote = None
            return self._zygote_now().spawn(self.nice)  # one fresh zygote; a second failure is the caller's

    def _spawn_spare(self) -> None:
        try:
            worker = self._spawn()
        except Exception as exc:  # noqa: BLE001 - the next acquire spawns (and reports) itself
            log.warning("warm worker for %s: %s", self.target, exc)
            with self._cond:
                self._count -= 1
                self._cond.notify()
            return
        with self._cond:
            if self._closed:
                worker.retire()
                self._count -= 1
                return
            self._idle.appendleft(worker)  # spares wait behind the workers already in use
            self._cond.notify()

    def _top_up(self) -> None:
        """Start spare workers in the background (call with the lock held)."""
        while not self._closed and len(self._idle) < self.spares and self._count < self.size:
            self._count += 1
            threading.Thread(target=self._spawn_spare, name="ephemera-warm-spawn", daemon=True).start()

    def prewarm(self) -> None:
        with self._cond:
            self._top_up()

    def acquire(self) -> WarmWorker:
        with self._cond:
            while True:
                if self._closed:
                    raise WarmError("the runtime is stopping")
                while self._idle:
                    worker = self._idle.pop()  # the most recently used: its caches are warm
                    if worker.alive:
                        self._busy.add(worker)
                        self._top_up()
                        return worker
                    self._count -= 1
                if self._count < self.size:
                    self._count += 1
                    break
                self._cond.wait()
        try:
            worker = self._spawn()
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise
        with self._cond:
            self._busy.add(worker)
            self._top_up()
        return worker

    def release(self, worker: WarmWorker) -> None:
        with self._cond:
            self._busy.discard(worker)
            if worker.alive and worker.uses < self.max_uses and not self._closed:
                self._idle.append(worker)
            else:
                if worker.alive:
                    worker.retire()
                self._count -= 1
                self._top_up()
            self._cond.notify()

    def kill_busy(self) -> None:
        with self._cond:
            busy = list(self._busy)
        for worker in busy:
            kill_group(worker.pid)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = list(self._idle), deque()
            self._count -= len(idle)
            zygote, self._zygote = self._zygote, None
            self._cond.notify_all()
        for worker in idle:
            worker.retire()
        if zygote is not None:
            zygote.close()


def run_warm(pool: WarmPool, params: dict, timeout: float, env: dict) -> Outcome:
    """One invocation on a worker of ``pool`` (a worker found dead before it started is replaced once)."""
    for attempt in (1, 2):
        try:
            worker = pool.acquire()
        except Exception as exc:  # noqa: BLE001 - no worker: the activation records why
            now = now_utc()
            return Outcome(
                "developer_error", error(ACTION_CRASHED, f"cannot start the action process: {exc}"), [], now, now, None
            )
        try:
            return worker.invoke(params, timeout, env)
        except OSError:
            if attempt == 2:
                raise
        finally:
            pool.release(worker)
    raise AssertionError("unreachable")
