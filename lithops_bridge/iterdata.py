"""Turning ``map_iterdata`` into one argument dict per call, the Lithops way.

``range`` and ``set`` become lists, any other non-list a single item. With
``extra_args``: a tuple item gets the extra tuple appended, a dict item gets the
extra dict merged, any other item becomes ``(item, *extra_args)``. Then each item
binds to the function's signature (``storage``, ``id`` are left out: injected on the
worker): a dict is keyword arguments (it must name every parameter unless the
function takes ``**kwargs``), a tuple positional arguments, anything else the first
parameter.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

NON_BOUND = ("storage", "id", "ibm_cos", "rabbitmq")


def as_list(iterdata: Any) -> list:
    from lithops_bridge.futures import FuturesList

    if isinstance(iterdata, (range, set, frozenset)):
        return list(iterdata)
    if isinstance(iterdata, (list, FuturesList)):
        return list(iterdata)
    return [iterdata]


def merge_extra_args(items: list, extra_args: Any) -> list:
    if not extra_args:
        return items
    out: list[Any] = []
    for item in items:
        if isinstance(item, tuple):
            if not isinstance(extra_args, tuple):
                raise TypeError("extra_args must contain args in a tuple when the iterdata items are tuples")
            out.append(item + extra_args)
        elif isinstance(item, dict):
            if not isinstance(extra_args, dict):
                raise TypeError("extra_args must contain kwargs in a dictionary when the iterdata items are dicts")
            out.append({**item, **extra_args})
        else:
            out.append((item, *extra_args))
    return out


def bound_signature(func: Callable) -> inspect.Signature:
    sig = inspect.signature(func)
    return sig.replace(parameters=[p for n, p in sig.parameters.items() if n not in NON_BOUND])


def bind(sig: inspect.Signature, item: Any) -> dict:
    """One iterdata item as the call's argument dict (raises TypeError/ValueError like Lithops)."""
    params = sig.parameters
    if isinstance(item, dict):
        if any(p.kind == p.VAR_KEYWORD for p in params.values()):
            return dict(item)
        expected = list(params)
        if not set(expected) <= set(item):
            raise ValueError(
                f"Check the args names in the data. You provided these args: {list(item)}, and the args must be: {expected}"
            )
        return dict(item)
    if isinstance(item, tuple):
        return dict(sig.bind(*item).arguments)
    return dict(sig.bind(item).arguments)


class Binder:
    """:func:`bind` for every item of one map, with the signature worked out once per
    item shape: how a plain item or a tuple of ``n`` binds depends only on the shape,
    so ``inspect`` binds the first of each shape and the rest are zipped to the same
    names (dict items, and shapes that fill ``*args``, always go through ``bind``)."""

    def __init__(self, sig: inspect.Signature):
        self.sig = sig
        self.names: dict[int, list[str] | None] = {}  # tuple length (-1: a plain item) -> the names it binds to

    def _shape(self, key: int, item: Any) -> list[str] | None:
        bound = bind(self.sig, item)  # raises like Lithops for a bad item
        kinds = {self.sig.parameters[n].kind for n in bound}
        simple = not kinds & {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}
        self.names[key] = list(bound) if simple and len(bound) == max(key, 1) else None
        return self.names[key]

    def __call__(self, item: Any) -> dict:
        if isinstance(item, dict):
            return bind(self.sig, item)
        key = len(item) if isinstance(item, tuple) else -1
        if key in self.names:
            names = self.names[key]
        else:
            self._shape(key, item)
            return bind(self.sig, item)
        if names is None:
            return bind(self.sig, item)
        return {names[0]: item} if key == -1 else dict(zip(names, item))


def call_data(func: Callable, iterdata: Any, extra_args: Any = None) -> list[dict]:
    """Argument dict of every call of a map."""
    items = merge_extra_args(as_list(iterdata), extra_args)
    binder = Binder(bound_signature(func))
    if items:
        kinds = set(map(type, items))  # in C: one pass over a map of 100,000 items
        if len(kinds) == 1 and not issubclass(next(iter(kinds)), (dict, tuple)):
            binder(items[0])  # binds (or refuses, like Lithops) the first item; the rest share its shape
            names = binder.names.get(-1)
            if names:
                name = names[0]
                return [{name: item} for item in items]
    return [binder(item) for item in items]
