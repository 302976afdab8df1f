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


def _by_value_modules() -> bool:
    return bool(getattr(cloudpickle.cloudpickle, "_PICKLE_BY_VALUE_MODULES", None))


def dumps(obj: Any) -> bytes:
    """``obj`` pickled so that any Python with the same importable modules loads it."""
    if not _by_value_modules():
        try:
            blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - not picklable by reference: cloudpickle's turn
            pass
        else:
            if _MAIN not in blob:  # a literal "__main__" in plain data also lands here: harmless
                return blob
    return cloudpickle.dumps(obj)
