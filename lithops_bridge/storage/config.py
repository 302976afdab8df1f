"""Storage sections of a Lithops config, completed with Lithops' fallbacks.

Their mapping onto Ephemera's storage backends is the core's
(:mod:`ephemera.storage.lithops`).

``localhost``: ``storage_bucket`` (default ``lithops-bridge``) and ``storage_root``
(a bridge extension; default: Ephemera's localhost root, ``<home>/storage``).
``aws_s3`` (credentials may sit in ``aws``): ``storage_bucket`` (mandatory),
``region``, ``endpoint``, ``access_key_id``, ``secret_access_key``, ``session_token``.
``ibm_cos`` (credentials may sit in ``ibm``): ``storage_bucket`` (mandatory),
``region`` or ``endpoint``, HMAC ``access_key_id``/``secret_access_key`` or
``api_key``/``iam_api_key`` with ``service_instance_id`` (and, a bridge extension,
``auth_endpoint``: the IAM token URL).
"""

from __future__ import annotations

from lithops_bridge import constants as c
from lithops_bridge.errors import ConfigError

def complete_section(name: str, data: dict) -> dict:
    """The storage section ``name`` completed with Lithops' fallbacks, checked."""
    section = dict(data.get(name) or {})
    if name == c.LOCALHOST:
        section.setdefault("storage_bucket", c.DEFAULT_BUCKET)
        return section
    parent = "aws" if name == "aws_s3" else "ibm"
    section = {**dict(data.get(parent) or {}), **section}
    if "region_name" in section:
        section.setdefault("region", section.pop("region_name"))
    if not section.get("storage_bucket"):
        raise ConfigError(f"{name}.storage_bucket", "missing", "name the bucket Lithops data goes to")
    if name == "ibm_cos":
        if not section.get("endpoint") and not section.get("region"):
            raise ConfigError("ibm_cos.region", "missing (and no ibm_cos.endpoint)", "set the COS region, e.g. us-east")
        hmac = (section.get("access_key_id"), section.get("secret_access_key"))
        if any(hmac) and not all(hmac):
            missing = "secret_access_key" if hmac[0] else "access_key_id"
            raise ConfigError(f"ibm_cos.{missing}", "missing while its HMAC pair is set", "set both HMAC keys")
        if not any(hmac) and not (section.get("api_key") or section.get("iam_api_key")):
            raise ConfigError("ibm_cos.api_key", "no credentials", "set HMAC keys, or api_key (or ibm.iam_api_key) with service_instance_id")
    return section
