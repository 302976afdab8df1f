"""Keeping secret values out of logs, results, records and exceptions.

A :class:`Scrubber` knows a set of secret values and replaces them wherever they
appear: in text, in nested JSON-like structures (keys too), and in log records (as a
logging filter). It also masks bearer tokens and request-signing key ids, which SDKs
print at DEBUG level. :func:`guard_loggers` puts one process-wide scrubber on the
loggers of the cloud SDKs, whose records do not pass through our handlers' filters
when those handlers are the SDK's own.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, Iterable

MASK = "********"
MIN_SECRET_LEN = 4  # shorter values would mask ordinary words
_BEARER_RE = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+")
_CREDENTIAL_RE = re.compile(r"(Credential=)[^/,\s'\"]+")


class Scrubber(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self._lock = threading.Lock()
        self.secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Know more secret values (thread-safe)."""
        with self._lock:
            known = set(self.secrets) | {s for s in secrets if s and len(s) >= MIN_SECRET_LEN}
            # longest first, so a secret containing another is masked whole
            self.secrets = sorted(known, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if "Bearer" in text:
            text = _BEARER_RE.sub(lambda m: m.group(1) + MASK, text)
        if "Credential=" in text:
            text = _CREDENTIAL_RE.sub(lambda m: m.group(1) + MASK, text)
        return text

    def scrub_obj(self, obj: Any) -> Any:
        """A copy of a JSON-like value with every string (keys too) scrubbed."""
        if isinstance(obj, str):
            return self.scrub(obj)
        if isinstance(obj, dict):
            return {self.scrub_obj(k): self.scrub_obj(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.scrub_obj(v) for v in obj]
        return obj

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record: leave it to logging
            return True
        record.msg, record.args = self.scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        return True


def install_scrubber(scrubber: Scrubber, logger: logging.Logger | None = None) -> None:
    """Attach the scrubber to every handler of ``logger`` (default: the root logger)."""
    for handler in (logger or logging.getLogger()).handlers:
        if scrubber not in handler.filters:
            handler.addFilter(scrubber)


SDK_SCRUBBER = Scrubber()  # shared by every SDK logger this process guards


def guard_loggers(prefixes: Iterable[str], secrets: Iterable[str]) -> None:
    """Scrub ``secrets`` from the loggers named by ``prefixes`` and their existing children.

    A logger's filter does not see records propagated from its children, so the
    filter goes on each one; call this after the SDK is imported."""
    prefixes = tuple(prefixes)
    SDK_SCRUBBER.add(secrets)
    names = {n for n in list(logging.Logger.manager.loggerDict) if n.split(".")[0] in prefixes} | set(prefixes)
    for name in names:
        logger = logging.getLogger(name)
        if SDK_SCRUBBER not in logger.filters:
            logger.addFilter(SDK_SCRUBBER)
