"""``ephemera invoke ACTION [k=v ...] --url URL``: invoke a deployed Code Engine function.

The request is a JSON ``POST`` with ``Authorization: Bearer <token>``, the
deployment's invoke token, read from ``--token-file FILE`` (the deploy keeps one under
the Ephemera home and prints where) or the ``EPHEMERA_INVOKE_TOKEN`` variable; never
from the command line, where ``ps`` would show it. ``apply`` and ``destroy`` requests
are manual events (``ephemera_kind: manual`` is added). The URL must be ``https``
(plain HTTP only to a loopback address, e.g. a test endpoint on 127.0.0.1), and
redirects are not followed (a redirect would resend the token elsewhere). The
function decides what the request may set (:mod:`ephemera.actions.remote`); its JSON
answer is printed as it came, and the exit code is 0 only for a 2xx answer without an
error.
"""

from __future__ import annotations

import ipaddress
import json
import os
import urllib.error
import urllib.request
from typing import TextIO
from urllib.parse import urlsplit

from ephemera.deploy.invoke_token import TOKEN_ENV, read_token_file
from ephemera.errors import EphemeraError, ParamError

TIMEOUT_SECONDS = 150.0  # a function runs at most 120 s; then the answer has to travel
EVENT_ACTIONS = ("apply", "destroy")
NEVER_PARAMS = ("token", "authorization", TOKEN_ENV.lower())  # a token passed as a parameter would travel in the body


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102 - refuse every redirect
        raise urllib.error.HTTPError(
            req.full_url, code, f"redirect to {newurl} not followed (it would resend the token)", headers, fp
        )


def _is_loopback(host: str) -> bool:
    """A loopback address literal (127.0.0.0/8, ::1); names are not resolved to decide."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    """``url`` if the token may be sent there; ParamError naming ``--url`` otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ParamError(
            "--url", f"'{url}' is not an http(s) URL", "pass the function's URL (`ibmcloud ce fn get --name ephemera-apply`)"
        )
    if parts.username or parts.password:
        raise ParamError("--url", "carries credentials", "pass the function's URL without user:password@")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ParamError(
            "--url", f"plain http to {parts.hostname} would send the invoke token in clear", "use the function's https URL"
        )
    return url


def invoke_token(token_file: str | None, environ=os.environ) -> str:
    if token_file:
        return read_token_file(token_file)
    token = (environ.get(TOKEN_ENV) or "").strip()
    if not token:
        raise ParamError(
            TOKEN_ENV,
            "is not set and no --token-file was given",
            "pass --token-file with the file `ephemera deploy code-engine` printed, or export the variable",
        )
    return token


def remote_invoke(action: str, url: str, params: dict, token: str, out: TextIO) -> int:
    """POST ``params`` to the function at ``url``; print its answer; 0 for a 2xx answer without an error."""
    check_url(url)
    for key in params:
        if key.lower() in NEVER_PARAMS:
            raise ParamError(key, "the token never travels as a parameter", f"pass it with --token-file or {TOKEN_ENV}")
    body = dict(params)
    if action in EVENT_ACTIONS:
        body.setdefault("ephemera_kind", "manual")
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json", "Authorization": f"Bearer {token}"},
    )
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=TIMEOUT_SECONDS) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, (exc.read() if exc.fp else b"") or json.dumps({"error": {"message": exc.reason}}).encode()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EphemeraError(f"cannot reach {url}: {reason}", retryable=True) from None
    try:
        result = json.loads(raw.decode())
    except ValueError:
        result = {"error": {"code": f"HTTP_{status}", "message": raw.decode(errors="replace")[:500]}}
    print(json.dumps(result, indent=2, default=str), file=out)
    ok = 200 <= status < 300 and not (isinstance(result, dict) and result.get("error"))
    return 0 if ok else 1
