"""The per-deployment invoke token of the Code Engine functions.

A deployed function acts only on a request that carries ``Authorization: Bearer
<token>``, where the token is the one the deploy generated (32 random bytes,
URL-safe base64) and bound to the functions as ``EPHEMERA_INVOKE_TOKEN`` through the
``ephemera-invoke`` Code Engine secret. The deploy keeps the owner's copy in a 0600
file under the Ephemera home and re-uses it on the next deploy unless asked to rotate
it. A function with no token bound refuses everything.

The comparison is constant-time (:func:`hmac.compare_digest` on the UTF-8 bytes: a
``str`` comparison would raise on non-ASCII input instead of failing).
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Any, Mapping

from ephemera.errors import ConfigError, ParamError
from ephemera.files import write_private

TOKEN_ENV = "EPHEMERA_INVOKE_TOKEN"  # the functions' variable (from the secret) and the CLI's
SECRET = "ephemera-invoke"  # the Code Engine secret that holds it
TOKEN_BYTES = 32
MIN_TOKEN_CHARS = 32  # a bound token shorter than this is a broken deployment, not a secret
SCHEME = "bearer"  # RFC 6750; auth schemes are case-insensitive (RFC 9110 11.1)


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def bound_token(environ: Mapping[str, str]) -> str:
    """The token the function was deployed with; ConfigError (fail closed) when there is none."""
    token = (environ.get(TOKEN_ENV) or "").strip()
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(
            TOKEN_ENV,
            "is not set (or too short): this function refuses every request",
            f"deploy with `ephemera deploy code-engine` (it binds the {SECRET} secret)",
        )
    return token


def _header(headers: Any, name: str) -> str | None:
    """One request header, by case-insensitive name (Code Engine canonicalises the names)."""
    if not isinstance(headers, dict):
        return None
    for key, value in headers.items():
        if str(key).lower() == name:
            if isinstance(value, list):
                return value[0] if len(value) == 1 and isinstance(value[0], str) else None  # two Authorization headers: refuse
            return value if isinstance(value, str) else None
    return None


def presented_token(headers: Any) -> str | None:
    """The bearer token of a request's ``Authorization`` header, or None (never from the body or query)."""
    value = _header(headers, "authorization")
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != SCHEME or not token:
        return None
    return token


def is_authorised(headers: Any, expected: str) -> bool:
    """Whether the request's bearer token is ``expected``, compared in constant time."""
    token = presented_token(headers)
    if token is None:
        return False
    return hmac.compare_digest(token.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


def token_file(home: Path, project: str) -> Path:
    """Where the owner's copy of a Code Engine project's invoke token is kept."""
    return home / "deploy" / f"code-engine-{project}.invoke-token"


def load_or_create(path: Path, *, rotate: bool = False) -> tuple[str, bool]:
    """(the token kept at ``path``, whether it was made now): made and written 0600 when
    missing, too short, or ``rotate``."""
    if not rotate and path.is_file():
        token = path.read_text().strip()
        if len(token) >= MIN_TOKEN_CHARS:
            return token, False
    token = new_token()
    write_private(path, token + "\n")
    return token, True


def read_token_file(path: str | os.PathLike) -> str:
    """A token from a file (``ephemera invoke --token-file``); ParamError naming the option."""
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise ParamError("--token-file", f"cannot read {path}: {exc.strerror}", "pass the file the deploy wrote") from None
    if not token:
        raise ParamError("--token-file", f"{path} is empty", "pass the file the deploy wrote")
    return token
