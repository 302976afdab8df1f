"""Field readers every event parser shares: a required string, a byte count, the payload.

Each raises :class:`~ephemera.errors.EventError` naming the field (its path in the
delivery) and the fix.
"""

from __future__ import annotations

from typing import Any

from ephemera.errors import EventError

# params that are not part of any event: bound config and action plumbing
NON_EVENT_PARAMS = frozenset({"config", "config_file"})
MAX_PAYLOAD_BYTES = 256 * 1024


def require_str(path: str, value: Any, fix: str) -> str:
    """``value`` if it is a non-empty string, else an EventError naming ``path`` with ``fix``."""
    if not isinstance(value, str) or not value:
        raise EventError(path, "missing or not a non-empty string", fix)
    return value


def payload(params: dict, event_keys: set[str]) -> dict:
    """The caller's own params: all but the format's ``event_keys``, the plumbing and the reserved ``ephemera_*``."""
    return {
        k: v for k, v in params.items() if k not in event_keys and k not in NON_EVENT_PARAMS and not k.startswith("ephemera_")
    }


def int_or_none(path: str, value: Any) -> int | None:
    """A byte count (0 <= n < 2**63) or None when absent; EventError naming ``path`` otherwise."""
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise EventError(path, f"'{value}' is not an integer", "object sizes are byte counts") from None
    if not 0 <= number < 2**63:
        raise EventError(path, f"{value!r} is not a byte count", "object sizes are byte counts (0 or more)")
    return number
