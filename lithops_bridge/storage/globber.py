"""``match_pattern`` of ``Storage.list_objects``: Lithops' glob rules for keys.

A key is a sequence of ``/``-separated names. ``?`` matches one character and ``*``
any run of characters within one name (never a ``/``); a name that is exactly ``**``
matches zero or more whole names; a backslash makes the next character literal.
Trailing slashes are ignored. ``**`` next to anything but a ``/`` is a ValueError,
as in Lithops.
"""

from __future__ import annotations

import re
from functools import lru_cache

_BAD_DOUBLE_STAR = re.compile(r"[^/\\]\*\*|^\*\*[^/]|[^\\]\*\*[^/]")


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern:
    if _BAD_DOUBLE_STAR.search(pattern):
        raise ValueError(f"** in {pattern} not alone between path separators")
    out = []  # matched against "/" + key, so every name is preceded by a "/"
    for name in pattern.rstrip("/").split("/"):
        if name == "**":
            out.append("(?:/[^/]*)*")
            continue
        out.append("/")
        i = 0
        while i < len(name):
            ch = name[i]
            if ch == "*":
                out.append("[^/]*")
            elif ch == "?":
                out.append("[^/]")
            elif ch == "\\" and i + 1 < len(name):
                i += 1
                out.append(re.escape(name[i]))
            else:
                out.append(re.escape(ch))
            i += 1
    return re.compile("".join(out))


def match(pattern: str, key: str) -> bool:
    """Whether ``key`` matches the glob ``pattern`` (Lithops' ``lithops.libs.globber.match``)."""
    return _compile(pattern).fullmatch("/" + key.rstrip("/")) is not None
