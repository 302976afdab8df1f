"""Pickling a call's arguments and result: the C pickler when it means the same, else cloudpickle.

cloudpickle builds a pickler in Python for every ``dumps`` (a few µs), which dominated a
no-op call. The C pickler gives the same bytes' meaning for anything it pickles by
reference except what cloudpickle pickles *by value*: objects of ``__main__`` (the
other side may not have them) and modules registered with
``cloudpickle.register_pickle_by_value``. So: the C pickler first; its output is kept
unless it names ``__main__`` or a by-value module is registered; anything it cannot
pickle (lambdas, local classes, ...) goes to cloudpickle, as before.
"""

from __future__ import annotations

import pickle
from typing import Any

import cloudpickle

_MAIN = b"__main__"


def by_value_modules() -> bool:
    """Whether some module is registered with cloudpickle to be pickled by value."""
    return bool(getattr(cloudpickle.cloudpickle, "_PICKLE_BY_VALUE_MODULES", None))


def dumps(obj: Any, by_value: bool | None = None) -> bytes:
    """``obj`` pickled so that any Python with the same importable modules loads it
    (``by_value``: :func:`by_value_modules`, when the caller asked it once for many objects)."""
    if not (by_value_modules() if by_value is None else by_value):
        try:
            blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - not picklable by reference: cloudpickle's turn
            pass
        else:
            if _MAIN not in blob:  # a literal "__main__" in plain data also lands here: harmless
                return blob
    return cloudpickle.dumps(obj)
