"""Checking that a value from outside (action parameters, a config file) is plain JSON
Ephemera can store and send on: nested at most ``MAX_DEPTH`` levels, text that encodes as
UTF-8 (no lone surrogates), finite numbers. The first offence raises the caller's
field-error type naming the dotted path of the value at fault."""

from __future__ import annotations

import math
from typing import Any

from ephemera.errors import FieldError

MAX_DEPTH = 64  # levels of nesting; deeper input is refused rather than recursed into


def _at(path: str, key: Any) -> str:
    return f"{path}[{key}]" if isinstance(key, int) and not isinstance(key, bool) else f"{path}.{key}" if path else str(key)


def check_plain(value: Any, error: type[FieldError], path: str = "", max_depth: int = MAX_DEPTH) -> None:
    """Raise ``error(path, problem, fix)`` for the first value that is not plain JSON."""
    todo = [(path, value, 0)]
    while todo:
        where, item, depth = todo.pop()
        shown = (where if len(where) <= 80 else where[:80] + "...") or "<top>"
        if depth > max_depth:
            raise error(shown, f"nested more than {max_depth} levels deep", "flatten the structure or put it in object storage")
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise error(shown, "text that is not valid Unicode (a lone surrogate)", "send UTF-8 text") from None
        elif isinstance(item, float) and not math.isfinite(item):
            raise error(shown, f"{item!r} is not a finite number", "send a finite number")
        elif isinstance(item, dict):
            for key, sub in item.items():
                if isinstance(key, str):
                    try:
                        key.encode("utf-8")
                    except UnicodeEncodeError:
                        raise error(shown, "a key that is not valid Unicode (a lone surrogate)", "send UTF-8 text") from None
                todo.append((_at(where, key), sub, depth + 1))
        elif isinstance(item, (list, tuple)):
            todo.extend((_at(where, i), sub, depth + 1) for i, sub in enumerate(item))
