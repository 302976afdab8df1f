"""Sending one notice: a JSON webhook, a Slack incoming webhook, an e-mail over SMTP.

Each sender gets the notice's text and fields already scrubbed, and a deadline (a
monotonic time) it must not pass. :func:`with_retries` retries named transient errors
only -- a refused, reset or timed-out connection, HTTP 429 and 5xx, SMTP 4xx replies
and a server that hung up -- with exponential backoff, within the deadline.
"""

from __future__ import annotations

import json
import smtplib
import socket
import ssl
import time
import urllib.error
import urllib.request
from email.message import EmailMessage
from typing import Callable, TypeVar

T = TypeVar("T")
BACKOFF = 0.5  # seconds before the first retry; doubles each time


class SendError(Exception):
    """A notice was not delivered: why, and whether another attempt may get through."""

    def __init__(self, message: str, transient: bool):
        super().__init__(message)
        self.message, self.transient = message, transient


def left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def with_retries(send: Callable[[float], T], deadline: float, attempts: int) -> T:
    """``send(timeout)`` until it succeeds, a non-transient error, ``attempts`` tries or the deadline."""
    delay = BACKOFF
    for attempt in range(1, max(1, attempts) + 1):
        timeout = left(deadline)
        if timeout <= 0:
            raise SendError("no time left to send", transient=True)
        try:
            return send(timeout)
        except SendError as exc:
            if not exc.transient or attempt >= attempts or left(deadline) <= delay:
                raise
        time.sleep(delay)
        delay *= 2
    raise AssertionError("not reached")


def _transient_os_error(exc: BaseException | str) -> bool:  # URLError.reason may be a string
    return isinstance(exc, (ConnectionRefusedError, ConnectionResetError, ConnectionAbortedError, TimeoutError, socket.timeout))


def post_json(url: str, body: dict, timeout: float) -> None:
    """POST ``body`` as JSON; SendError (transient for 429, 5xx and connection failures)."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json", "User-Agent": "ephemera-notify"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the operator's own URL
            response.read()
    except urllib.error.HTTPError as exc:
        raise SendError(f"HTTP {exc.code}", transient=exc.code == 429 or exc.code >= 500) from None
    except urllib.error.URLError as exc:
        raise SendError(f"connection failed: {type(exc.reason).__name__}", _transient_os_error(exc.reason)) from None
    except OSError as exc:
        raise SendError(f"connection failed: {type(exc).__name__}", _transient_os_error(exc)) from None


def slack_escape(text: str) -> str:
    """``text`` shown as itself in Slack: ``&``, ``<`` and ``>`` -- Slack's control
    characters, which make mentions (``<!channel>``) and links (``<http://x|label>``) --
    as the HTML entities Slack decodes for display."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(text: str, fields: dict) -> dict:
    """A Slack incoming-webhook message: ``text`` (the fallback and notification text) and a
    section block in Slack's mrkdwn; every value in them escaped (:func:`slack_escape`),
    for run ids, reasons and error messages come from outside (workloads, events)."""
    lines = [
        f"*{slack_escape(fields['title'])}*",
        *(f"*{slack_escape(k)}:* {slack_escape(v)}" for k, v in fields["facts"].items() if v),
    ]
    return {"text": slack_escape(text), "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}]}


def one_line(text: str) -> str:
    """``text`` fit for a mail header: line breaks and other control characters become
    spaces, so no text can end the header and start another (header injection)."""
    return "".join(" " if ch.isspace() or not ch.isprintable() else ch for ch in text)


def send_mail(settings: dict, subject: str, body: str, timeout: float) -> None:
    """One e-mail through ``settings``' SMTP server: implicit TLS or STARTTLS (certificate
    checked) before any login -- a server that does not offer STARTTLS gets no AUTH, and
    a login over a clear connection is refused unless ``smtp_insecure``; SendError,
    transient for 4xx replies and dropped or refused connections."""
    implicit, starttls = bool(settings.get("smtp_implicit_tls")), bool(settings["smtp_starttls"])
    if settings.get("smtp_username") and not (implicit or starttls or settings.get("smtp_insecure")):
        raise SendError("SMTP login refused on a clear connection (set smtp_starttls or smtp_implicit_tls)", transient=False)
    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = (
        one_line(subject),
        settings["email_from"],
        ", ".join(settings["email_to"]),
    )
    message.set_content(body)
    tls = ssl.create_default_context(cafile=settings.get("smtp_ca_file")) if implicit or starttls else None
    try:
        connect = (
            (lambda: smtplib.SMTP_SSL(settings["smtp_host"], settings["smtp_port"], timeout=timeout, context=tls))
            if implicit
            else (lambda: smtplib.SMTP(settings["smtp_host"], settings["smtp_port"], timeout=timeout))
        )
        with connect() as smtp:
            smtp.ehlo()
            if starttls and not implicit:
                smtp.starttls(context=tls)  # SMTPNotSupportedError when not offered: never fall back to clear
                smtp.ehlo()
            if settings.get("smtp_username"):
                smtp.login(settings["smtp_username"], settings.get("smtp_password") or "")
            smtp.send_message(message)
    except smtplib.SMTPResponseException as exc:
        raise SendError(f"SMTP {exc.smtp_code}", transient=400 <= exc.smtp_code < 500) from None
    except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError) as exc:
        raise SendError(f"SMTP connection lost: {type(exc).__name__}", transient=True) from None
    except smtplib.SMTPException as exc:
        raise SendError(f"SMTP failed: {type(exc).__name__}", transient=False) from None
    except ssl.SSLError as exc:
        raise SendError(f"TLS failed: {exc.reason or type(exc).__name__}", transient=False) from None
    except OSError as exc:
        raise SendError(f"connection failed: {type(exc).__name__}", _transient_os_error(exc)) from None
