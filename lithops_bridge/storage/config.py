"""Storage sections of a Lithops config, and their mapping onto Ephemera's storage.

``localhost``: ``storage_bucket`` (default ``lithops-bridge``) and ``storage_root``
(a bridge extension; default: Ephemera's localhost root, ``<home>/storage``).
``aws_s3`` (credentials may sit in ``aws``): ``storage_bucket`` (mandatory),
``region``, ``endpoint``, ``access_key_id``, ``secret_access_key``, ``session_token``.
``ibm_cos`` (credentials may sit in ``ibm``): ``storage_bucket`` (mandatory),
``region`` or ``endpoint``, HMAC ``access_key_id``/``secret_access_key`` or
``api_key``/``iam_api_key`` with ``service_instance_id``.
"""

from __future__ import annotations

from lithops_bridge import constants as c
from lithops_bridge.errors import ConfigError

COS_ENDPOINTS = {"public": "https://s3.{}.cloud-object-storage.appdomain.cloud",
                 "private": "https://s3.private.{}.cloud-object-storage.appdomain.cloud",
                 "direct": "https://s3.direct.{}.cloud-object-storage.appdomain.cloud"}


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


def to_ephemera(storage_config: dict) -> tuple[dict, str]:
    """(Ephemera config dict, bucket) for a bridge storage config ``{"backend", <name>: {...}}``."""
    name = storage_config.get("backend", c.LOCALHOST)
    section = dict(storage_config.get(name) or {})
    if name == c.LOCALHOST:
        section.setdefault("storage_bucket", c.DEFAULT_BUCKET)
    bucket = section.get("storage_bucket")
    if not bucket:
        raise ConfigError(f"{name}.storage_bucket", "missing", "name the bucket Lithops data goes to")
    cfg: dict = {"storage": {"backend": name, "bucket": bucket}}
    if name == c.LOCALHOST:
        cfg["localhost"] = {"root": section.get("storage_root")}
    elif name == "aws_s3":
        keys = ("endpoint", "region", "access_key_id", "secret_access_key", "session_token")
        cfg["aws_s3"] = {k: section[k] for k in keys if section.get(k)}
    elif name == "ibm_cos":
        out = {k: section[k] for k in ("region", "endpoint", "access_key_id", "secret_access_key", "service_instance_id") if section.get(k)}
        api_key = section.get("api_key") or section.get("iam_api_key")
        if api_key and not out.get("access_key_id"):
            out["api_key"] = api_key
        if section.get("private_endpoint") and section.get("use_private_endpoint"):
            out["endpoint"] = section["private_endpoint"]
        cfg["ibm_cos"] = out
    else:
        raise ConfigError("lithops.storage", f"unknown storage backend '{name}'", "use localhost, aws_s3 or ibm_cos")
    return cfg, bucket


def from_ephemera(config) -> dict:
    """The bridge storage config of an Ephemera :class:`Config` (its state bucket)."""
    name = config["storage"]["backend"]
    section: dict = {"storage_bucket": config.state_bucket}
    if name == c.LOCALHOST:
        from ephemera.storage.localhost.config import storage_root

        section["storage_root"] = str(storage_root(config))
    else:
        section.update({k: v for k, v in config[name].items() if v})
    return {"backend": name, name: section}
