"""Retrying storage writes that must not be lost (a run's outputs and its marker).

Only errors a backend names transient (``StorageError.retryable``: a full disk, a
briefly unwritable folder, a throttled or unreachable endpoint) are retried, with
exponential backoff, until a deadline (the run's hard deadline on a VM); anything
else, and the last transient error at the deadline, is raised.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Callable, TypeVar

from ephemera.errors import StorageError
from ephemera.timeutil import now_utc

log = logging.getLogger("ephemera.storage")
T = TypeVar("T")
FIRST_DELAY = 0.5  # seconds before the first retry; doubles each time
MOST_DELAY = 30.0  # longest wait between two attempts
NO_DEADLINE_SECONDS = 600.0  # how long to retry when the caller has no deadline


def retry_transient(
    call: Callable[[], T], what: str, until: datetime | None = None, sleep: Callable[[float], None] = time.sleep
) -> T:
    """``call()``, retried while it raises a retryable StorageError and ``until`` is ahead."""
    stop = until.timestamp() if until is not None else time.time() + NO_DEADLINE_SECONDS
    delay = FIRST_DELAY
    attempt = 1
    while True:
        try:
            return call()
        except StorageError as exc:
            left = stop - now_utc().timestamp()
            if not exc.retryable or left <= 0:
                raise
            wait = min(delay, MOST_DELAY, left)
            log.warning("%s failed (attempt %d, transient: %s); retrying in %.1fs", what, attempt, exc.message, wait)
            sleep(wait)
            delay *= 2
            attempt += 1
