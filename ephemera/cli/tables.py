"""Plain-text tables and durations for the CLI, and text from outside made safe to print.

What the CLI prints of run records, log lines and activations was written by workloads,
events and VMs. :func:`visible` shows their control characters instead of letting the
terminal obey them: an ESC sequence can rewrite the screen, set the window title or
(on some terminals) answer back as typed input; a carriage return can overwrite what a
line says; a bidi override can reorder it.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

# C0 controls but tab and newline, DEL, C1 controls; bidi marks, embeddings, overrides and
# isolates; the Unicode line and paragraph separators (which some terminals break on)
_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
_UNSAFE_RE = re.compile(f"[{_UNSAFE}]")
_UNSAFE_OR_NEWLINE_RE = re.compile(f"[{_UNSAFE}\n]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: object, keep_newlines: bool = False) -> str:
    """``text`` with every control character shown as an escape (``ESC`` as ``\\x1b``, a
    right-to-left override as ``\\u202e``); newlines kept only with ``keep_newlines``."""
    text = str(text)
    pattern = _UNSAFE_RE if keep_newlines else _UNSAFE_OR_NEWLINE_RE
    return pattern.sub(_escape, text) if pattern.search(text) else text


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    cells = [[("" if c is None else visible(c)) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def human_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
