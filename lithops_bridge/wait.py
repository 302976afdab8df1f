"""Module-level ``wait`` and ``get_result`` over futures of any executors.

``return_when`` is ``ALL_COMPLETED`` (100), ``ANY_COMPLETED`` (-1), ``ALWAYS`` (0) or
a percentage of the futures. ``timeout`` raises the builtin ``TimeoutError``. With
``throw_except`` a failed call's exception is raised as soon as it is seen.
"""

from __future__ import annotations

import math
import time
from typing import Any

from lithops_bridge.constants import ALL_COMPLETED, ALWAYS, ANY_COMPLETED
from lithops_bridge.futures import FuturesList, ResponseFuture
from lithops_bridge.waiting import Waiter, unwatch, watch

THREADPOOL_SIZE = 64
_NEW, _SUCCESS, _DONE = ResponseFuture.State.New, ResponseFuture.State.Success, ResponseFuture.State.Done


def _as_list(fs: Any) -> list:
    if fs is None:
        return []
    if isinstance(fs, ResponseFuture):
        return [fs]
    return list(fs)


def _needed(n: int, return_when: Any) -> int:
    if return_when == ANY_COMPLETED:
        return min(1, n)
    if return_when == ALWAYS:
        return 0
    try:
        pct = float(return_when)
    except (TypeError, ValueError):
        raise ValueError(
            f"return_when must be ALL_COMPLETED, ANY_COMPLETED, ALWAYS or a percentage, got {return_when!r}"
        ) from None
    if not 0 <= pct <= 100:
        raise ValueError(f"return_when must be a percentage between 0 and 100, got {return_when!r}")
    return math.ceil(pct * n / 100)


def wait(
    fs: Any,
    throw_except: bool = True,
    return_when: Any = ALL_COMPLETED,
    download_results: bool = False,
    timeout: float | None = None,
    threadpool_size: int = THREADPOOL_SIZE,
    wait_dur_sec: float | None = None,
    show_progressbar: bool = True,
    internal_storage: Any = None,
    futures_from_executor_wait: bool = False,
) -> tuple[FuturesList, FuturesList]:
    """Block until ``return_when`` of ``fs`` are done; returns ``(done, not_done)``.

    ``futures_from_executor_wait`` (an executor's ``wait()`` without futures, as in
    Lithops): the percentage counts only the futures not finished yet."""
    futures = _as_list(fs)
    if not futures:
        return FuturesList(), FuturesList()
    if _NEW in {f._state for f in futures}:
        raise ValueError(f"{next(f for f in futures if f._state == _NEW)!r} was never invoked")
    if futures_from_executor_wait:
        pending = sum(1 for f in futures if not f._finished())
        need = len(futures) - pending + _needed(pending, return_when)
    else:
        need = _needed(len(futures), return_when)
    waiter = Waiter(need, throw_except)
    groups = watch(futures, waiter)
    deadline = None if timeout is None else time.monotonic() + float(timeout)
    try:
        with waiter.cond:
            while not waiter.satisfied():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(
                        f"Timeout of {timeout} seconds exceeded waiting for function activations to finish "
                        f"({waiter.done} of {len(futures)} done)"
                    )
                waiter.cond.wait(left if left is not None else 1.0)
    finally:
        unwatch(groups, waiter)
    if throw_except and waiter.error is not None:
        next(f for f in futures if f.error)._raise()
    # every finished future counts as done (Lithops: a call whose status is in is done);
    # fetching the results moves Success to Done
    if waiter.done >= len(futures):  # all of them (the common case of a whole map)
        done, not_done = FuturesList(futures), FuturesList()
    else:
        done, not_done = FuturesList(f for f in futures if f._done), FuturesList(f for f in futures if not f._done)
    if download_results:
        for f in done:
            if f._state == _SUCCESS:
                f._state = _DONE
    return done, not_done


def results_of(done: list, throw_except: bool) -> list:
    """The values of the finished futures ``done`` that produce output, in order (a
    future read already, as ``wait(download_results=True)`` leaves them, gives its
    value directly; a failed one raises, or gives None, through ``result``)."""
    return [f._value if f._state == _DONE else f.result(throw_except=throw_except) for f in done if f._produce_output]


def get_result(
    fs: Any,
    throw_except: bool = True,
    timeout: float | None = None,
    threadpool_size: int = THREADPOOL_SIZE,
    wait_dur_sec: float | None = None,
    show_progressbar: bool = True,
    internal_storage: Any = None,
) -> list:
    """The results of ``fs`` in their order (futures that produce no output skipped)."""
    futures = _as_list(fs)
    done, _ = wait(futures, throw_except=throw_except, download_results=True, timeout=timeout)
    return results_of(done, throw_except)
