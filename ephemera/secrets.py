"""Keeping secret values out of logs, results, records and exceptions.

A :class:`Scrubber` knows the secret values of a config and replaces them wherever
they appear: in text, in nested JSON-like structures, and in log records (as a
logging filter installed on handlers).
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

MASK = "********"
MIN_SECRET_LEN = 4  # shorter values would mask ordinary words


class Scrubber(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        # longest first, so a secret containing another is masked whole
        self.secrets = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LEN}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def scrub_obj(self, obj: Any) -> Any:
        if not self.secrets:
            return obj
        if isinstance(obj, str):
            return self.scrub(obj)
        if isinstance(obj, dict):
            return {self.scrub_obj(k): self.scrub_obj(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.scrub_obj(v) for v in obj]
        return obj

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = self.scrub(record.getMessage())
            record.args = None
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
