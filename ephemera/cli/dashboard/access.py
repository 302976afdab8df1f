"""Who the dashboard answers: requests naming one of its own Host names (so a page whose
DNS name re-resolves to this machine -- DNS rebinding -- gets 421, not the runs), and,
when a token is set, requests carrying it.

The token comes from ``$EPHEMERA_DASHBOARD_TOKEN`` or a file (``--token-file``), never
from the command line, where every user of the machine reads it in ``ps``. An empty
value is no token; a value under :data:`MIN_TOKEN_BYTES` bytes is refused. Tokens are
compared with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import socket
import stat
from pathlib import Path
from typing import Iterable

from ephemera.errors import ParamError

TOKEN_ENV = "EPHEMERA_DASHBOARD_TOKEN"
MIN_TOKEN_BYTES = 16
MAKE_TOKEN = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("", "0.0.0.0", "::")
# URL-unreserved characters: the token travels unchanged in a query, a cookie and a header
_TOKEN_RE = re.compile(r"^[A-Za-z0-9._~-]+$")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address, or a name resolved here) is this machine's loopback."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
    except (OSError, ValueError):
        return False


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def host_name(header: str | None) -> str | None:
    """The name a ``Host`` header gives, without port or brackets, lower-case, without a
    trailing dot; None when there is no usable one."""
    value = (header or "").strip().lower()
    if value.startswith("["):
        name, sep, rest = value[1:].partition("]")
        if not sep or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
    else:
        name, sep, port = value.rpartition(":")
        if not sep:
            name = value
        elif not port.isdigit() or ":" in name:
            return None
    name = name.rstrip(".")
    return name or None


class HostCheck:
    """The Host names the dashboard answers to: the bind address; for a loopback bind also
    ``localhost``, ``127.0.0.1`` and ``[::1]``; for a wildcard bind (0.0.0.0, ::) those, the
    machine's host name and any IP address (no DNS answer can rebind an address); and the
    names given with ``--allow-host``."""

    def __init__(self, bind: str, extra: Iterable[str] = ()):
        self.wildcard = bind in WILDCARDS
        names = {host_name(bind) or bind.lower()} | {host_name(n) or n.lower() for n in extra}
        if self.wildcard or is_loopback(bind):
            names |= set(LOOPBACK_NAMES)
        if self.wildcard:
            names.add(socket.gethostname().lower())
        self.names = frozenset(n for n in names if n)

    def allows(self, header: str | None) -> bool:
        name = host_name(header)
        return name is not None and (name in self.names or (self.wildcard and _is_ip(name)))


def check_token(token: str | None, source: str) -> str | None:
    """``token`` as the dashboard uses it: None when unset or empty; ParamError naming
    ``source`` when it is shorter than :data:`MIN_TOKEN_BYTES` bytes."""
    if not token:
        return None
    if len(token.encode()) < MIN_TOKEN_BYTES:
        raise ParamError(
            source,
            f"the dashboard token is {len(token.encode())} bytes; at least {MIN_TOKEN_BYTES} bytes are needed",
            f"make one with {MAKE_TOKEN}",
        )
    if not _TOKEN_RE.match(token):
        raise ParamError(
            source,
            "the dashboard token holds a character other than letters, digits and -._~ "
            "(it must pass unchanged in a URL, a cookie and a header)",
            f"make one with {MAKE_TOKEN}",
        )
    return token


def read_token(token_file: str | None, environ: dict | None = None) -> tuple[str | None, str]:
    """(the token, where it came from): ``token_file``'s first line when given, else
    ``$EPHEMERA_DASHBOARD_TOKEN``; checked by :func:`check_token`."""
    if token_file:
        path = Path(token_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ParamError(
                "--token-file",
                f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}",
                f"write the token into a file only you can read, e.g. {MAKE_TOKEN} > FILE; chmod 600 FILE",
            ) from None
        lines = text.splitlines()
        return check_token(lines[0].strip() if lines else "", "--token-file"), f"--token-file {path}"
    value = (os.environ if environ is None else environ).get(TOKEN_ENV)
    return check_token(value, TOKEN_ENV), f"${TOKEN_ENV}"


def readable_by_others(token_file: str | None) -> bool:
    """Whether the token file may be read by other users (its mode lets group or others read)."""
    if not token_file:
        return False
    try:
        return bool(os.stat(Path(token_file).expanduser()).st_mode & (stat.S_IRGRP | stat.S_IROTH))
    except OSError:
        return False


def token_matches(given: str | None, token: str) -> bool:
    """Whether ``given`` is ``token`` (constant time; an empty or missing value never is)."""
    return given is not None and given != "" and hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode())
