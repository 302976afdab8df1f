"""Keeping secret values out of logs, results, records and exceptions.

A :class:`Scrubber` knows a set of secret values and replaces them wherever they
appear, in every encoding a value takes in text (:func:`encoded_forms`): raw,
JSON-escaped (ASCII or not, and escaped twice, as a JSON string inside a JSON
string; with Go's ``\u0026``/``\u003c``/``\u003e`` escapes), Python ``repr``, HTML
entities (named and numeric, as ``html.escape`` and Jinja2 write them),
URL-encoded (``quote`` with and without '/' safe, ``quote_plus``; upper- or lower-case
hex; once or twice) and base64 (standard and urlsafe, padded or not, at each of the
three byte alignments the value can have inside a longer encoded text); a URL secret
(a webhook URL) also as its path and query without scheme and host, when that part is
long enough to be its own (:data:`MIN_URL_PART_LEN`); in text, in
nested JSON-like structures (keys too), and in log records (as a logging filter). It also masks bearer tokens and request-signing key ids, which SDKs
print at DEBUG level. :func:`guard_loggers` puts one process-wide scrubber on the
loggers of the cloud SDKs, whose records do not pass through our handlers' filters
when those handlers are the SDK's own.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import threading
from typing import Any, Iterable
from urllib.parse import quote, quote_plus, urlsplit

MASK = "********"
MIN_SECRET_LEN = 4  # shorter values would mask ordinary words
# A base64 fragment shorter than this could be anyone's text. Seven is what a six-byte
# secret leaves fully determined at its worst alignment (a byte lead of 1 or 2), so every
# secret of six bytes or more is masked in base64 wherever it sits; shorter ones are
# masked raw and in the text encodings only.
MIN_ENCODED_LEN = 7
# A URL secret's path and query alone is masked only from this length: shorter ones
# ("/hook", "/api/v1") are anyone's text, while a webhook's ("/services/T../B../..") is its secret.
MIN_URL_PART_LEN = 16
_PERCENT_RE = re.compile(r"%[0-9A-F]{2}")
_GO_ESCAPES = {"&": "\\u0026", "<": "\\u003c", ">": "\\u003e"}
# how HTML writers spell & < > " ': html.escape, html.escape(quote=False), Jinja2/MarkupSafe,
# and all numeric (decimal, hex)
_HTML_TABLES = [
    str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"}),
    str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;"}),
    str.maketrans({c: f"&#{ord(c)};" for c in "&<>\"'"}),
    str.maketrans({c: f"&#x{ord(c):x};" for c in "&<>\"'"}),
]
_BEARER_RE = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+")
_CREDENTIAL_RE = re.compile(r"(Credential=)[^/,\s'\"]+")


def _base64_cores(raw: bytes) -> set[str]:
    """The base64 characters that encode ``raw`` alone, wherever it starts in a longer
    text: for each of the three byte alignments, the characters fully determined by
    ``raw`` (neither the bytes before it nor those after), in both alphabets."""
    cores = set()
    for lead in range(3):
        encoded = base64.b64encode(b"\0" * lead + raw).decode()
        core = encoded[-(-4 * lead // 3) : (4 * (lead + len(raw))) // 3]
        if len(core) >= MIN_ENCODED_LEN:
            cores |= {core, core.replace("+", "-").replace("/", "_")}
    return cores


def _go_forms(text: str) -> set[str]:
    """``text`` as Go's encoding/json writes it: '&', '<', '>' as ``\\u0026`` etc., in
    lower- and upper-case hex."""
    if not any(c in text for c in _GO_ESCAPES):
        return set()
    lower = "".join(_GO_ESCAPES.get(c, c) for c in text)
    return {lower, "".join(_GO_ESCAPES[c].upper().replace("\\U", "\\u") if c in _GO_ESCAPES else c for c in text)}


def _html_forms(text: str) -> set[str]:
    if not any(c in text for c in "&<>\"'"):
        return set()
    return {text.translate(table) for table in _HTML_TABLES} | {html.escape(text, quote=False)}


def _percent_forms(text: str) -> set[str]:
    """``text`` URL-encoded (path-safe, fully, form-style), each also with lower-case hex and
    encoded a second time (``%2F`` -> ``%252F``)."""
    once = {quote(text), quote(text, safe=""), quote_plus(text)}
    forms = once | {quote(f, safe="") for f in once} | {quote(f) for f in once}
    return forms | {_PERCENT_RE.sub(lambda m: m.group().lower(), f) for f in forms}


def _url_parts(secret: str) -> set[str]:
    """A URL secret's path and query without scheme and host (with and without the leading
    '/'), when long enough to be its own."""
    if "://" not in secret:
        return set()
    try:
        url = urlsplit(secret)
    except ValueError:
        return set()
    if not url.netloc:
        return set()
    tail = url.path + (f"?{url.query}" if url.query else "")
    return {part for part in (tail, tail.lstrip("/")) if len(part) >= MIN_URL_PART_LEN and part.strip("/")}


def _text_forms(secret: str) -> set[str]:
    """Every text encoding of ``secret`` (escapes also composed: the repr of a value inside a
    JSON string, a JSON string inside another, Go's escapes inside either)."""

    def json_forms(text: str) -> set[str]:
        once = json.dumps(text)[1:-1]
        forms = {text, once, json.dumps(text, ensure_ascii=False)[1:-1], json.dumps(once)[1:-1]}
        return forms | {g for f in forms for g in _go_forms(f)}

    forms = json_forms(secret) | json_forms(repr(secret)[1:-1])
    return forms | _html_forms(secret) | _percent_forms(secret)


def encoded_forms(secret: str) -> set[str]:
    """``secret`` and each encoded form of it that text may hold; for a URL, also those of
    its path and query alone (:func:`_url_parts`)."""
    forms = _text_forms(secret) | _base64_cores(secret.encode("utf-8", "surrogatepass"))
    for part in _url_parts(secret):
        forms |= _text_forms(part)
    return {f for f in forms if f and len(f) >= MIN_SECRET_LEN}


class Scrubber(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self._lock = threading.Lock()
        self.secrets: list[str] = []  # the values as given
        self._forms: list[str] = []  # every form of them that is masked, longest first
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Know more secret values (thread-safe)."""
        with self._lock:
            known = set(self.secrets) | {str(s) for s in secrets if s and len(str(s)) >= MIN_SECRET_LEN}
            self.secrets = sorted(known, key=len, reverse=True)
            # longest first, so a secret (or form) containing another is masked whole
            self._forms = sorted({f for s in known for f in encoded_forms(s)}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        if "Bearer" in text:
            text = _BEARER_RE.sub(lambda m: m.group(1) + MASK, text)
        if "Credential=" in text:
            text = _CREDENTIAL_RE.sub(lambda m: m.group(1) + MASK, text)
        return text

    def longest_form(self) -> int:
        """The length of the longest masked form (0 with no secret)."""
        forms = self._forms
        return len(forms[0]) if forms else 0

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


class StreamScrubber:
    """Scrubs text that arrives in pieces (a pipe read in bounded chunks), so that a
    secret cut across two pieces is masked too: the end of a piece that could begin a
    secret's form is held back until the next piece (or a line end) says more. What
    :meth:`feed` and :meth:`flush` return is safe to show."""

    def __init__(self, scrubber: Scrubber):
        self.scrubber = scrubber
        self._held = ""  # scrubbed text that may be the start of a form

    def feed(self, piece: str) -> str:
        text = self.scrubber.scrub(self._held + piece)
        hold = 0 if text.endswith("\n") else min(len(text), self.scrubber.longest_form() - 1)
        self._held = text[len(text) - hold :] if hold > 0 else ""
        return text[: len(text) - hold] if hold > 0 else text

    def flush(self) -> str:
        text, self._held = self.scrubber.scrub(self._held), ""
        return text


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
