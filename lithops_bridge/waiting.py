"""How ``wait()`` learns that its futures finished, without a callback per future.

A wait registers one :class:`Waiter` with the :class:`Group` of each job its futures
belong to (a group per job, made with its futures); a finishing future tells its
group's waiters (under ``futures._LOCK``), and a waiter is woken once, when it can
return. Adding and removing a callback on each of 100,000 futures, and waking the
waiting thread for each, cost more than the calls themselves.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING

from lithops_bridge.futures import _LOCK

if TYPE_CHECKING:
    from lithops_bridge.futures import ResponseFuture

_ERROR = "Error"  # _ERROR


class Group:
    """The futures of one job, for whoever waits on them: a waiter registers once per
    job rather than once per future, and hears of each future as it finishes."""

    __slots__ = ("watchers",)

    def __init__(self) -> None:
        self.watchers: list[Waiter] = []  # the waits over some of this job's futures; under _LOCK


class Waiter:
    """One ``wait()``: counts its futures as they finish (under ``_LOCK``, in
    :meth:`ResponseFuture._finish`) and is woken once, when it can return."""

    def __init__(self, need: int, throw_except: bool):
        self.need = need  # futures that must be done
        self.throw_except = throw_except  # a failed future ends the wait
        self.pending: Counter[int] = Counter()  # id of a future not finished yet -> times it is in the waited list
        self.done = 0  # futures of the list finished
        self.error: "ResponseFuture | None" = None  # the first failed one seen
        self.cond = threading.Condition()

    def satisfied(self) -> bool:
        return self.done >= self.need or (self.throw_except and self.error is not None)

    def seen(self, future: "ResponseFuture") -> bool:
        """Count ``future`` (called under ``_LOCK``); True when this makes the wait end."""
        times = self.pending.pop(id(future), 0)
        if not times:
            return False
        before = self.satisfied()
        self.done += times
        if self.error is None and future._state == _ERROR:
            self.error = future
        return not before and self.satisfied()

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()


def watch(futures: list, waiter: Waiter) -> list[Group]:
    """Count the finished ``futures`` into ``waiter`` and register it for the others'
    jobs; returns the groups to :func:`unwatch`."""
    with _LOCK:
        pending = [f for f in futures if not f._done]
        if len(pending) < len(futures):
            waiter.done += len(futures) - len(pending)
            if waiter.error is None:
                waiter.error = next((f for f in futures if f._done and f._state == _ERROR), None)
        for f in pending:
            if f._group is None:  # made by hand or unpickled: a group of its own
                f._group = Group()
        waiter.pending = Counter(map(id, pending))  # counted in C: a map waits on 100,000 futures
        groups = list({id(g): g for g in {f._group for f in pending}}.values())
        for group in groups:
            group.watchers.append(waiter)
    return groups


def unwatch(groups: list[Group], waiter: Waiter) -> None:
    with _LOCK:
        for group in groups:
            group.watchers.remove(waiter)
