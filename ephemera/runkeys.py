"""Run keys: the per-run secret that authenticates what a run's VMs execute.

The controller holds one *signing key*: the config's ``security.signing_key`` when set
(at least 32 characters; a deploy binds it, so deployed actions have it), else the
file ``signing.key`` in the Ephemera home, 32 random bytes as 64 hex digits, created
mode 0600 on first use (exclusively: two processes racing to create it end up with
the same key). A run's key is ``HMAC-SHA256(signing key, "ephemera run key\\0" +
run_id)``, as 64 hex digits (the HMAC key is the signing key's UTF-8 text).

It never enters the state bucket: the controller signs the run's job spec with it and
hands it to the run's VMs in their boot documents; the Lithops bridge signs and checks
with it every object it later unpickles (``lithops_bridge.backends.standalone.seal``).
Whoever can write the bucket but does not hold the key (another run's VM, a leaked
bucket credential) can therefore not make a VM or a client run code. A run key is a
secret: it is scrubbed like the config's secrets wherever a VM logs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ephemera.errors import ConfigError

if TYPE_CHECKING:
    from ephemera.config import Config

SIGNING_KEY_FILE = "signing.key"
KEY_RE = re.compile(r"^[0-9a-f]{64}$")
KEY_FIX = "use 64 hex digits, e.g. the output of `python -c 'import secrets; print(secrets.token_hex(32))'`"
_DOMAIN = b"ephemera run key\0"


def _home_key(home: Path) -> str:
    """The home's signing key, created (0600) if there is none yet.

    The new key is written whole to a private temporary file that is then hard-linked
    to its name, which fails if the name exists (like ``O_EXCL``): concurrent first
    uses agree on one key, and no reader ever sees a half-written file."""
    path = home / SIGNING_KEY_FILE
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=home, prefix=f".{SIGNING_KEY_FILE}.")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            os.unlink(tmp)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd) as fh:
        value = fh.read().strip()
    if not KEY_RE.match(value):
        raise ConfigError(
            "security.signing_key",
            f"the key file {SIGNING_KEY_FILE} in the Ephemera home is not 64 hex digits",
            f"delete it (runs under way lose their keys) or {KEY_FIX}",
        )
    return value


def signing_key(config: Config) -> str:
    """The controller's signing key: ``security.signing_key``, else the home's file."""
    configured = config.security.signing_key
    return configured if configured else _home_key(config.home)


def derive(signing: str, run_id: str) -> str:
    """The run key of ``run_id`` under the signing key ``signing`` (64 hex digits)."""
    return hmac.new(signing.encode("utf-8"), _DOMAIN + run_id.encode("utf-8"), hashlib.sha256).hexdigest()


def run_key(config: Config, run_id: str) -> str:
    """``run_id``'s key under this controller's signing key (64 hex digits, a secret)."""
    return derive(signing_key(config), run_id)


def bind_signing_key(data: dict, config: Config) -> dict:
    """``data`` (a config dict about to be deployed) with ``security.signing_key`` set,
    so deployed actions derive the same run keys as this machine. Returns ``data``."""
    section = data.setdefault("security", {}) or {}
    section["signing_key"] = signing_key(config)
    data["security"] = section
    return data
