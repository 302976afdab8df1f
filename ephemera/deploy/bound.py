"""The fingerprint of the config a deployment binds (OpenWhisk).

OpenWhisk merges an invocation's parameters over the package's bound ones unless the
action is annotated ``final``. The deploy binds, beside ``config``, its SHA-256
(``ephemera_config_sha256``) over the canonical JSON; the entry point refuses a
request whose ``config`` does not match it, so a config swapped in by an invocation
is caught even on an action deployed before ``final`` was set (one that swaps both
is stopped by ``final`` alone).
"""

from __future__ import annotations

import hashlib
import json

DIGEST_PARAM = "ephemera_config_sha256"


def canonical(config: dict) -> str:
    """The config as the platform hands it back: JSON, keys sorted, no spaces."""
    return json.dumps(json.loads(json.dumps(config, default=str)), sort_keys=True, separators=(",", ":"))


def config_digest(config: dict) -> str:
    return hashlib.sha256(canonical(config).encode()).hexdigest()
