"""Parent side of an action process: its environment, the exchange of one invocation
(params in, logs and result out, the timeout), and how it ended.

:func:`exchange` writes the params to the invocation's stdin pipe, reads its stdout
and stderr as timestamped log lines and its result pipe, until the invocation is
over, and reports whether the timeout passed first. The invocation is over when the
process exits (a fresh process per invocation) or when it closes the result pipe (a
warm worker, which lives on); pipes a grandchild still holds are drained for
``EXIT_GRACE_S`` more. :func:`run_cold` is the fresh-process way
(``python -m ephemera.runtime.invoker``); ``warmpool`` the warm one.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from datetime import datetime
from typing import Callable

from ephemera.timeutil import now_utc
from ephemera.runtime.invoker import ACTION_BAD_RESULT, ACTION_CRASHED, ACTION_TIMEOUT, error

MAX_LOG_LINES = 5000  # lines kept per activation; the rest are counted, not kept
MAX_LINE_CHARS = 4000  # longer log lines are cut
EXIT_GRACE_S = 1.0  # after the invocation ends, how long to drain pipes a grandchild may hold


def child_env(extra: dict | None = None) -> dict:
    """The child's environment: the parent's, with the working directory importable
    (as for ``python -m``, so actions and workloads next to the config load) and
    unbuffered output (so each log line gets its own time)."""
    env = dict(os.environ)
    paths = [os.getcwd()] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class LogCollector:
    """Splits stream bytes into timestamped lines, within the size limits."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.dropped = 0
        self._partial: dict[str, bytes] = {}

    def feed(self, stream: str, data: bytes) -> None:
        buf = self._partial.get(stream, b"") + data
        *complete, rest = buf.split(b"\n")
        for raw in complete:
            self._add(stream, raw)
        if len(rest) > MAX_LINE_CHARS * 4:
            self._add(stream, rest)
            rest = b""
        self._partial[stream] = rest

    def close(self, stream: str) -> None:
        rest = self._partial.pop(stream, b"")
        if rest:
            self._add(stream, rest)

    def _add(self, stream: str, raw: bytes) -> None:
        if len(self.lines) >= MAX_LOG_LINES:
            self.dropped += 1
            return
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        if len(text) > MAX_LINE_CHARS:
            text = text[:MAX_LINE_CHARS] + " [line cut]"
        stamp = now_utc().isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self.lines.append(f"{stamp} {stream}: {text}")

    def result_lines(self) -> list[str]:
        for stream in list(self._partial):
            self.close(stream)
        if self.dropped:
            return self.lines + [f"[{self.dropped} more log lines dropped: limit is {MAX_LOG_LINES}]"]
        return list(self.lines)


class Outcome:
    """How one invocation ended."""

    __slots__ = ("status", "result", "logs", "start", "end", "exit_code")

    def __init__(self, status, result, logs, start, end, exit_code):
        self.status = status  # success | application_error | developer_error | timeout
        self.result = result  # the action's result dict, or {"error": {...}}
        self.logs = logs  # timestamped "stdout:"/"stderr:" lines
        self.start = start  # datetime (UTC) the invocation was handed to its process
        self.end = end  # datetime (UTC) it ended
        self.exit_code = exit_code  # exit code (0 for a warm worker that lives on); None when killed at the timeout

    @property
    def duration_ms(self) -> int:
        return int((self.end - self.start).total_seconds() * 1000)


def parse_result(raw: bytes, exit_code: int | None) -> tuple[str, dict]:
    if not raw:
        how = f"was killed by signal {-exit_code}" if exit_code is not None and exit_code < 0 else f"exited with code {exit_code}"
        return "developer_error", error(ACTION_CRASHED, f"the action process {how} without a result")
    try:
        envelope = json.loads(raw)
    except ValueError as exc:
        return "developer_error", error(ACTION_BAD_RESULT, f"the result is not JSON: {exc}")
    status, result = (envelope.get("status"), envelope.get("result")) if isinstance(envelope, dict) else (None, None)
    if status not in ("success", "application_error", "developer_error") or not isinstance(result, dict):
        return "developer_error", error(ACTION_BAD_RESULT, "the result envelope is malformed")
    return status, result


def timeout_outcome(timeout: float, logs: list[str], start: datetime) -> Outcome:
    message = f"the action did not finish within {timeout:g} s (timeouts.action) and was killed"
    return Outcome("timeout", error(ACTION_TIMEOUT, message), logs, start, now_utc(), None)


def exchange(
    payload: bytes,
    stdin_fd: int,
    stdout_fd: int,
    stderr_fd: int,
    result_fd: int,
    deadline: float,
    exited: Callable[[], bool],
    end_on_result: bool,
) -> tuple[LogCollector, bytes, bool]:
    """Feed ``payload`` to stdin and collect logs and the result until the invocation is
    over (``exited()``, or the result pipe closed when ``end_on_result``) and its pipes
    are drained, or ``deadline`` (monotonic) passes: ``(logs, result, timed_out)``.
    Closes every fd it was given."""
    logs, result_buf, sent = LogCollector(), bytearray(), 0
    sel = selectors.DefaultSelector()
    os.set_blocking(stdin_fd, False)
    sel.register(stdin_fd, selectors.EVENT_WRITE, "stdin")
    for fd, name in ((stdout_fd, "stdout"), (stderr_fd, "stderr"), (result_fd, "result")):
        sel.register(fd, selectors.EVENT_READ, name)
    ended_at: float | None = None
    timed_out = False
    try:
        while sel.get_map():
            now = time.monotonic()
            if ended_at is None and (exited() or (end_on_result and "result" not in _names(sel))):
                ended_at = now
            if ended_at is not None and (now - ended_at > EXIT_GRACE_S or _names(sel) <= {"stdin"}):
                break  # over; a grandchild may hold the pipes
            if now >= deadline:
                timed_out = True
                break
            wait = min(deadline - now, 0.2 if ended_at is None else EXIT_GRACE_S)
            for key, _ in sel.select(timeout=wait):
                fd, name = key.fd, key.data
                if name == "stdin":
                    try:
                        sent += os.write(fd, payload[sent : sent + 65536])
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:  # the child is gone (or read nothing); its end tells why
                        sent = len(payload)
                    if sent >= len(payload):
                        sel.unregister(fd)
                        os.close(fd)
                    continue
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not data:
                    sel.unregister(fd)
                    os.close(fd)
                    if name != "result":
                        logs.close(name)
                    continue
                if name == "result":
                    result_buf += data
                else:
                    logs.feed(name, data)
    finally:
        for key in list(sel.get_map().values()):
            try:
                os.close(key.fd)
            except OSError:
                pass
        sel.close()
    return logs, bytes(result_buf), timed_out and ended_at is None


def _names(sel: selectors.BaseSelector) -> set[str]:
    return {key.data for key in sel.get_map().values()}


def kill_group(pid: int) -> None:
    """SIGKILL the process group ``pid`` leads (the action and everything it started)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def run_cold(target: str, params: dict, timeout: float, *, env: dict | None = None, live: "set | None" = None) -> Outcome:
    """Run one invocation of ``target`` ("module:function") in a fresh process and
    return its :class:`Outcome`. ``live``, if given, holds the process while it runs."""
    payload = json.dumps(params, default=str).encode()
    r_fd, w_fd = os.pipe()
    start = now_utc()
    from ephemera.lifeline import child_binding

    bound_env, lifeline = child_binding(env if env is not None else child_env())
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ephemera.runtime.invoker", target, str(w_fd)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(w_fd, *lifeline),
            start_new_session=True,  # its own process group: a timeout (or the runtime's death) kills it all
            env=bound_env,
        )
    except OSError as exc:
        os.close(r_fd)
        os.close(w_fd)
        end = now_utc()
        return Outcome("developer_error", error(ACTION_CRASHED, f"cannot start the action process: {exc}"), [], start, end, None)
    os.close(w_fd)
    if live is not None:
        live.add(proc.pid)
    try:
        fds = [os.dup(f.fileno()) for f in (proc.stdin, proc.stdout, proc.stderr)]
        for f in (proc.stdin, proc.stdout, proc.stderr):
            f.close()
        logs, raw, timed_out = exchange(
            payload,
            fds[0],
            fds[1],
            fds[2],
            r_fd,
            time.monotonic() + timeout,
            lambda: proc.poll() is not None,
            end_on_result=False,
        )
    finally:
        if proc.poll() is None:
            kill_group(proc.pid)
        exit_code = proc.wait()
        if live is not None:
            live.discard(proc.pid)
    if timed_out:
        return timeout_outcome(timeout, logs.result_lines(), start)
    status, result = parse_result(raw, exit_code)
    return Outcome(status, result, logs.result_lines(), start, now_utc(), exit_code)
