"""Errors of the bridge: config problems name the key and the fix (Ephemera's
ConfigError, re-exported), storage misses are Lithops' StorageNoSuchKeyError."""

from __future__ import annotations

from ephemera.errors import ConfigError, EphemeraError


class BridgeError(EphemeraError):
    """A bridge operation failed (a job could not be submitted, an agent vanished)."""

    code = "BRIDGE_ERROR"


__all__ = ["BridgeError", "ConfigError"]
