"""Time helpers: the one place for "now", ISO 8601 parsing and formatting, and ages.

Every time Ephemera stores is timezone-aware UTC, written with millisecond precision.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone, tzinfo
from typing import Any

from ephemera.errors import EventError, FieldError

EXAMPLE = "e.g. '2026-11-21T10:00:00Z'"


MIN_YEAR, MAX_YEAR = 1970, 9000  # times outside these years are refused as input


def now_utc() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def now_iso() -> str:
    """The current UTC time as ISO 8601 with milliseconds (how records stamp times)."""
    return now_utc().isoformat(timespec="milliseconds")


def iso_of(ts: float) -> str:
    """Epoch seconds as an ISO 8601 UTC time with milliseconds."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


def since(iso: str, now: datetime | None = None) -> float:
    """Seconds from the ISO time ``iso`` until ``now`` (default: the current time)."""
    return ((now or now_utc()) - datetime.fromisoformat(iso)).total_seconds()


def parse_time(
    field: str, value: Any, *, default_tz: tzinfo = timezone.utc, error: type[FieldError] = EventError
) -> datetime | None:
    """A timezone-aware time from an ISO 8601 string (a trailing 'Z' allowed) or from
    epoch seconds or milliseconds; None for None or ''. A time without an offset is
    read in ``default_tz``. Anything else raises ``error(field, problem, fix)``."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            parsed = datetime.fromtimestamp(value / 1000 if value > 1e11 else value, timezone.utc)
        except (OverflowError, ValueError, OSError):
            raise error(field, f"{value!r} is not a time in epoch seconds or milliseconds", EXAMPLE) from None
        return _in_range(field, value, parsed, error)
    if not isinstance(value, str):
        raise error(field, f"expected an ISO 8601 time, got {type(value).__name__}", EXAMPLE)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise error(field, f"'{value}' is not an ISO 8601 time", EXAMPLE) from None
    return _in_range(field, value, parsed if parsed.tzinfo else parsed.replace(tzinfo=default_tz), error)


def _in_range(field: str, value: Any, parsed: datetime, error: type[FieldError]) -> datetime:
    """``parsed`` if it is within the years a run's times can be computed in (it is
    shifted to UTC and has timeouts added), else the field error."""
    try:
        utc = parsed.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not MIN_YEAR <= utc.year <= MAX_YEAR:
        raise error(field, f"{value!r} is outside the years {MIN_YEAR}-{MAX_YEAR}", EXAMPLE)
    return parsed


class Budget:
    """The time an invocation may still spend, against a deadline on the monotonic clock.

    An action gets one from its platform's time limit (OpenWhisk's ``__OW_DEADLINE``,
    the limit the deploy gave a Code Engine function, the local runtime's action
    timeout); work that would not finish inside it is left to the reaper. A budget
    without a deadline never runs out."""

    def __init__(self, seconds: float | None = None):
        self._clock = time.monotonic
        self.total = None if seconds is None else max(0.0, float(seconds))  # the whole budget, seconds
        self.deadline = None if self.total is None else self._clock() + self.total  # monotonic seconds

    @classmethod
    def until_epoch(cls, epoch_seconds: float) -> "Budget":
        """A budget ending at a wall-clock time (epoch seconds)."""
        return cls(epoch_seconds - time.time())

    def remaining(self) -> float:
        """Seconds left (infinity without a deadline, never below 0)."""
        if self.deadline is None:
            return float("inf")
        return max(0.0, self.deadline - self._clock())

    def allows(self, seconds: float) -> bool:
        """Whether ``seconds`` of work still fit. A short budget is asked for a quarter
        of itself at most, so that it still does some work (its platform's timeout, not
        this estimate, is the hard limit)."""
        if self.total is None:
            return True
        left = self.remaining()
        return left > 0 and left >= min(seconds, self.total / 4)

    def __repr__(self) -> str:
        return "Budget(unlimited)" if self.deadline is None else f"Budget({self.remaining():.1f}s left)"
