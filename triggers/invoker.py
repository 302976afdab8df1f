"""Runs each action invocation in its own process, like an OpenWhisk container.

The parent starts ``python -m ephemera.triggers.invoker <module:function> <result-fd>``. The
child reads the params as JSON from stdin (the config travels there, never in argv or
the environment), imports the action module, calls ``function(params)`` and writes
``{"status", "result"}`` as JSON to the dedicated result fd. Its stdout and stderr are
the action's logs, captured line by line with a timestamp. The parent kills the
child's whole process group when the action timeout passes (result code
``ACTION_TIMEOUT``); a crash, a missing result or a non-JSON result becomes an error
result. :class:`Invoker` runs several invocations at once on a bounded thread pool
and leaves an activation record for each.

The child imports nothing heavy before it knows the action: this module's top level
imports only what the child needs; the parent's machinery is imported lazily.
"""

from __future__ import annotations

import importlib
import json
import os
import sys

# result codes of errors the runtime (not the action) reports
ACTION_TIMEOUT = "ACTION_TIMEOUT"
ACTION_CRASHED = "ACTION_CRASHED"
ACTION_BAD_RESULT = "ACTION_BAD_RESULT"
ACTION_NOT_FOUND = "ACTION_NOT_FOUND"
ACTION_EXCEPTION = "ACTION_EXCEPTION"
ACTION_BAD_PARAMS = "ACTION_BAD_PARAMS"


def _error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


# --------------------------------------------------------------------------- child
def _child_main(argv: list[str]) -> int:
    """Entry point of the action process. Returns its exit code."""
    import traceback

    target, fd = argv[0], int(argv[1])
    os.set_inheritable(fd, False)  # the action's own subprocesses must not hold it

    def finish(status: str, result: dict) -> int:
        try:
            body = json.dumps({"status": status, "result": result})
        except (TypeError, ValueError) as exc:
            print(f"invoker: the action's result is not JSON-serialisable ({exc})", file=sys.stderr)
            body = json.dumps({"status": "developer_error", "result": _error(ACTION_BAD_RESULT, f"the result is not JSON-serialisable: {exc}")})
        sys.stdout.flush()
        sys.stderr.flush()
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(body)
        return 0

    try:
        params = json.loads(sys.stdin.buffer.read() or b"{}")
    except ValueError as exc:
        return finish("developer_error", _error(ACTION_BAD_PARAMS, f"params are not JSON: {exc}"))
    if not isinstance(params, dict):
        return finish("developer_error", _error(ACTION_BAD_PARAMS, "params must be a JSON object"))
    module_name, _, func_name = target.partition(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name or "main")
    except (ImportError, AttributeError) as exc:
        traceback.print_exc()
        return finish("developer_error", _error(ACTION_NOT_FOUND, f"cannot load action '{target}': {exc}"))
    except BaseException as exc:  # the module itself failed while importing
        traceback.print_exc()
        return finish("developer_error", _error(ACTION_EXCEPTION, f"importing '{module_name}' raised {type(exc).__name__}: {exc}"))
    try:
        result = func(params)
    except BaseException as exc:  # includes SystemExit: an action must return a dict
        traceback.print_exc()
        return finish("developer_error", _error(ACTION_EXCEPTION, f"the action raised {type(exc).__name__}: {exc}"))
    if not isinstance(result, dict):
        return finish("developer_error", _error(ACTION_BAD_RESULT, f"the action returned {type(result).__name__}, not a dict"))
    return finish("application_error" if "error" in result else "success", result)


# -------------------------------------------------------------------------- parent
MAX_LOG_LINES = 5000  # lines kept per activation; the rest are counted, not kept
MAX_LINE_CHARS = 4000  # longer log lines are cut
EXIT_GRACE_S = 1.0  # after the child exits, how long to drain pipes a grandchild may hold


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


class _LogCollector:
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
        from datetime import datetime, timezone

        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        if len(text) > MAX_LINE_CHARS:
            text = text[:MAX_LINE_CHARS] + " [line cut]"
        stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self.lines.append(f"{stamp} {stream}: {text}")

    def result_lines(self) -> list[str]:
        for stream in list(self._partial):
            self.close(stream)
        if self.dropped:
            return self.lines + [f"[{self.dropped} more log lines dropped: limit is {MAX_LOG_LINES}]"]
        return list(self.lines)


def run_action(target: str, params: dict, timeout: float, *, env: dict | None = None, live: "set | None" = None):
    """Run one invocation of ``target`` ("module:function") in a fresh process and
    return its :class:`Outcome`. ``live``, if given, holds the process while it runs."""
    import selectors
    import signal
    import subprocess
    import time
    from datetime import datetime, timezone

    payload = json.dumps(params, default=str).encode()
    r_fd, w_fd = os.pipe()
    start = datetime.now(timezone.utc)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ephemera.triggers.invoker", target, str(w_fd)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(w_fd,),
            start_new_session=True,  # its own process group: a timeout kills it all
            env=env if env is not None else child_env(),
        )
    except OSError as exc:
        os.close(r_fd)
        os.close(w_fd)
        end = datetime.now(timezone.utc)
        return Outcome("developer_error", _error(ACTION_CRASHED, f"cannot start the action process: {exc}"), [], start, end, None)
    os.close(w_fd)
    if live is not None:
        live.add(proc)
    logs, result_buf = _LogCollector(), bytearray()
    sel = selectors.DefaultSelector()
    os.set_blocking(proc.stdin.fileno(), False)
    sel.register(proc.stdin, selectors.EVENT_WRITE, "stdin")
    sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
    sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
    result_file = os.fdopen(r_fd, "rb", buffering=0)
    sel.register(result_file, selectors.EVENT_READ, "result")
    deadline = time.monotonic() + timeout
    exited_at: float | None = None
    timed_out = False
    sent = 0
    try:
        while sel.get_map():
            now = time.monotonic()
            if proc.poll() is not None and exited_at is None:
                exited_at = now
            if exited_at is not None and now - exited_at > EXIT_GRACE_S:
                break  # a grandchild holds the pipes open; the action itself is done
            if now >= deadline:
                timed_out = proc.poll() is None
                break
            wait = min(deadline - now, 0.2 if exited_at is None else EXIT_GRACE_S)
            for key, _ in sel.select(timeout=wait):
                name = key.data
                if name == "stdin":
                    try:
                        sent += os.write(key.fileobj.fileno(), payload[sent : sent + 65536])
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:  # the child is gone; its exit code tells why
                        sent = len(payload)
                    if sent >= len(payload):
                        sel.unregister(key.fileobj)
                        key.fileobj.close()
                    continue
                try:
                    data = os.read(key.fileobj.fileno(), 65536)
                except BlockingIOError:
                    continue
                if not data:
                    sel.unregister(key.fileobj)
                    if name != "result":
                        logs.close(name)
                    continue
                if name == "result":
                    result_buf += data
                else:
                    logs.feed(name, data)
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                proc.kill()
        exit_code = proc.wait()
        sel.close()
        for f in (proc.stdin, proc.stdout, proc.stderr, result_file):
            try:
                f.close()
            except OSError:
                pass
        if live is not None:
            live.discard(proc)
    end = datetime.now(timezone.utc)
    if timed_out:
        message = f"the action did not finish within {timeout:g} s (timeouts.action) and was killed"
        return Outcome("timeout", _error(ACTION_TIMEOUT, message), logs.result_lines(), start, end, None)
    status, result = _parse_result(bytes(result_buf), exit_code)
    return Outcome(status, result, logs.result_lines(), start, end, exit_code)


def _parse_result(raw: bytes, exit_code: int) -> tuple[str, dict]:
    if not raw:
        how = f"was killed by signal {-exit_code}" if exit_code < 0 else f"exited with code {exit_code}"
        return "developer_error", _error(ACTION_CRASHED, f"the action process {how} without a result")
    try:
        envelope = json.loads(raw)
    except ValueError as exc:
        return "developer_error", _error(ACTION_BAD_RESULT, f"the result is not JSON: {exc}")
    status, result = (envelope.get("status"), envelope.get("result")) if isinstance(envelope, dict) else (None, None)
    if status not in ("success", "application_error", "developer_error") or not isinstance(result, dict):
        return "developer_error", _error(ACTION_BAD_RESULT, "the result envelope is malformed")
    return status, result


class Outcome:
    """How one action process ended."""

    __slots__ = ("status", "result", "logs", "start", "end", "exit_code")

    def __init__(self, status, result, logs, start, end, exit_code):
        self.status = status  # success | application_error | developer_error | timeout
        self.result = result  # the action's result dict, or {"error": {...}}
        self.logs = logs  # timestamped "stdout:"/"stderr:" lines
        self.start = start  # datetime (UTC) the process was started
        self.end = end  # datetime (UTC) it ended
        self.exit_code = exit_code  # process exit code; None when killed at the timeout

    @property
    def duration_ms(self) -> int:
        return int((self.end - self.start).total_seconds() * 1000)


class Invoker:
    """A bounded pool of action processes; each invocation leaves an activation record."""

    def __init__(self, storage, bucket: str, *, timeout: float, secret_values=(), max_workers: int = 8, on_done=None):
        import logging
        import threading
        from concurrent.futures import ThreadPoolExecutor

        self.storage = storage  # where activation records go
        self.bucket = bucket  # the state bucket
        self.timeout = float(timeout)  # seconds before an invocation is killed
        self.secret_values = list(secret_values)  # scrubbed from every record
        self.on_done = on_done  # optional callback(Activation) after each record is stored
        self._pool = ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="ephemera-invoke")
        self._live: set = set()  # Popen objects of running actions
        self._lock = threading.Lock()
        self._log = logging.getLogger("ephemera.triggers.invoker")
        self._closed = False
        self._pending: dict = {}  # future -> what it invokes, until it finishes

    def submit(self, *, trigger: str, rule: str, action: str, target: str, params: dict, event: dict):
        """Queue one invocation; returns a Future of its (stored, scrubbed) Activation."""
        from ephemera.triggers.activations import new_activation_id

        with self._lock:
            if self._closed:
                raise RuntimeError("the invoker is shut down")  # a programming error in the runtime
            activation_id = new_activation_id()
            future = self._pool.submit(self._invoke, activation_id, trigger, rule, action, target, params, event)
            self._pending[future] = f"{trigger} -> rule {rule} -> action {action}"
        future.add_done_callback(lambda f: self._pending.pop(f, None) if not f.cancelled() else None)
        return future

    def _invoke(self, activation_id, trigger, rule, action, target, params, event):
        from ephemera.secrets import Scrubber
        from ephemera.triggers.activations import Activation, store_activation

        self._log.info("activation %s: %s -> rule %s -> action %s starting", activation_id, trigger, rule, action)
        env = child_env({"__OW_ACTIVATION_ID": activation_id, "__OW_ACTION_NAME": action})
        try:
            outcome = run_action(target, params, self.timeout, env=env, live=self._live)
        except Exception as exc:  # the runtime itself failed: still leave a record
            from datetime import datetime, timezone

            now = datetime.now(timezone.utc)
            outcome = Outcome("developer_error", _error(ACTION_CRASHED, f"the runtime could not run the action: {exc}"), [], now, now, None)
        record = Activation(
            activationId=activation_id,
            trigger=trigger,
            rule=rule,
            action=action,
            target=target,
            start=outcome.start.isoformat(timespec="milliseconds"),
            end=outcome.end.isoformat(timespec="milliseconds"),
            duration_ms=outcome.duration_ms,
            status=outcome.status,
            result=outcome.result,
            logs=outcome.logs,
            event={k: v for k, v in event.items() if k != "config"},
            exit_code=outcome.exit_code,
        )
        try:
            record = store_activation(self.storage, self.bucket, record, self.secret_values)
        except Exception as exc:  # storage down: keep running, say so
            scrubber = Scrubber(self.secret_values)
            record = Activation.from_dict(scrubber.scrub_obj(record.to_dict()))
            self._log.error("activation %s: could not store the record: %s", activation_id, scrubber.scrub(str(exc)))
        self._log.info("activation %s: %s %s in %d ms", activation_id, action, record.status, record.duration_ms)
        if self.on_done is not None:
            try:
                self.on_done(record)
            except Exception:
                self._log.exception("activation %s: on_done callback failed", activation_id)
        return record

    def kill_all(self) -> None:
        """Kill every running action process now (their activations record a crash)."""
        import signal

        for proc in list(self._live):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting work, drop queued invocations, wait for running ones (each
        ends by its timeout at the latest)."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=wait, cancel_futures=True)
        for future, what in list(self._pending.items()):
            if future.cancelled():
                self._log.warning("not invoked (the runtime stopped before it started): %s", what)
                self._pending.pop(future, None)


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
