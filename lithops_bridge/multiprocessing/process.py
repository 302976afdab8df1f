"""``Process``: one call of a function on the executor's backend, as Lithops'
``lithops.multiprocessing.Process``.

``start()`` submits ``target(*args, **kwargs)`` (or the ``run()`` of a subclass) as
one ``call_async``; ``join(timeout)`` waits for it and, as in Lithops, raises the
call's exception; ``is_alive()`` and ``exitcode`` (0, or 1 after an exception) tell
how it went. ``pid`` is ``"<executor_id>/<job_id>/<call_id>"``. A call cannot be
stopped once started: ``terminate()`` raises NotImplementedError, as in Lithops.
"""

from __future__ import annotations

import itertools
import multiprocessing as _mp
import os
from functools import partial
from typing import Any, Callable

from lithops_bridge.multiprocessing import config as mp_config

WORKER_NAME_ENV = "LITHOPS_MP_WORKER_NAME"
_counter = itertools.count(1)


def _in_worker() -> bool:
    from lithops_bridge.backends.localhost.backend import in_worker

    return in_worker()


def cloud_process_wrapper(
    data: Any,
    func: Callable,
    initializer: Callable | None = None,
    initargs: tuple = (),
    name: str | None = None,
    op: str = "apply",
) -> Any:
    """What runs on the worker: the initializer, then ``func`` the way ``op`` says."""
    os.environ[WORKER_NAME_ENV] = name or ""
    if initializer is not None:
        initializer(*(initargs or ()))
    if op == "apply":
        return func(*data["args"], **data["kwargs"])
    if op == "map":
        return func(data)
    if op == "starmap":
        return func(*data)
    raise ValueError(f"unknown operation {op!r}")


def _run_process(cls: type, state: dict) -> None:
    """A Process subclass's ``run()``, on the worker."""
    proc = cls.__new__(cls)
    proc.__dict__.update(state)
    proc.run()


def current_process():
    """In a call: a Process named as the call; elsewhere the stdlib's current process."""
    if _in_worker() and WORKER_NAME_ENV in os.environ:
        proc = Process.__new__(Process)
        proc._name, proc._future, proc._executor = os.environ[WORKER_NAME_ENV], None, None
        return proc
    return _mp.current_process()


def new_executor(**overrides: Any):
    """A FunctionExecutor from the LITHOPS_CONFIG parameter (plus ``overrides``)."""
    from lithops_bridge.executor import FunctionExecutor

    return FunctionExecutor(**{**dict(mp_config.get_parameter(mp_config.LITHOPS_CONFIG) or {}), **overrides})


class Process:
    """``multiprocessing.Process`` whose body runs as one call on the executor's backend."""

    def __init__(
        self,
        group=None,
        target: Callable | None = None,
        name: str | None = None,
        args: tuple = (),
        kwargs: dict | None = None,
        *,
        daemon: bool | None = None,
    ):
        if group is not None:
            raise ValueError("process grouping is not implemented")
        self._target, self._args, self._kwargs = target, tuple(args or ()), dict(kwargs or {})
        self._name = name or f"{type(self).__name__}-{next(_counter)}"
        self._daemon = bool(daemon)
        self._parent_pid = os.getpid()
        self._executor = None  # created by start()
        self._future = None  # the call, once started

    def run(self) -> None:
        """The process body; override in a subclass, or pass ``target``."""
        if self._target is not None:
            self._target(*self._args, **self._kwargs)

    def start(self) -> None:
        if self._future is not None:
            raise AssertionError("cannot start a process twice")
        if self._parent_pid != os.getpid():
            raise AssertionError("can only start a process object created by current process")
        self._executor = new_executor()
        extra_env = dict(mp_config.get_parameter(mp_config.ENV_VARS) or {})
        if type(self).run is Process.run:
            if self._target is None:
                raise ValueError("Process has no target and no run() of its own")
            func = partial(cloud_process_wrapper, func=self._target, name=self._name, op="apply")
            data = ({"args": self._args, "kwargs": self._kwargs},)
        else:
            state = {k: v for k, v in self.__dict__.items() if k not in ("_executor", "_future")}
            func, data = _run_process, (type(self), state)
        self._future = self._executor.call_async(func, data, extra_env=extra_env)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the call (at most ``timeout`` s); its exception is raised here, as in Lithops."""
        if self._future is None:
            raise AssertionError("can only join a started process")
        self._future._wait(timeout)
        if self._future._finished() and self._future.error:
            self._future._raise()

    def is_alive(self) -> bool:
        return self._future is not None and not self._future._finished()

    def terminate(self) -> None:
        raise NotImplementedError("a call cannot be stopped once started (Lithops: not implemented)")

    kill = terminate

    @property
    def exitcode(self) -> int | None:
        if self._future is None or not self._future._finished():
            return None
        return 1 if self._future.error else 0

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError("name must be a string")
        self._name = name

    @property
    def daemon(self) -> bool:
        return self._daemon

    @daemon.setter
    def daemon(self, daemonic: bool) -> None:
        if self._future is not None:
            raise AssertionError("process has already started")
        self._daemon = bool(daemonic)

    @property
    def ident(self) -> str | None:
        f = self._future
        return None if f is None else f"{f.executor_id}/{f.job_id}/{f.call_id}"

    pid = ident

    def __repr__(self) -> str:
        state = "initial" if self._future is None else "started" if self.is_alive() else f"stopped exitcode={self.exitcode}"
        return f"<{type(self).__name__} name={self._name!r} {state}>"
