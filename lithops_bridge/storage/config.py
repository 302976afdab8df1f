"""Storage sections of a Lithops config, and their mapping onto Ephemera's storage.

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
        out = {k: section[k] for k in ("region", "endpoint", "access_key_id", "secret_access_key", "service_instance_id",
                                       "auth_endpoint") if section.get(k)}
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
    """The bridge/Lithops storage config ``{"backend": name, name: section}`` of an
    Ephemera :class:`Config`, on its state bucket. Used by the agents (the bridge
    config of a run's VMs) and by ``ephemera lithops-config``.

    ``ibm_cos`` gets Ephemera's own resolution: the endpoint derived from ``region``
    and ``endpoint_type``, HMAC keys when set, else IAM with ``api_key`` falling back
    to ``ibm.iam_api_key`` (plus ``service_instance_id`` and the token URL)."""
    name = config["storage"]["backend"]
    section: dict = {"storage_bucket": config.state_bucket}
    if name == c.LOCALHOST:
        from ephemera.storage.localhost.config import storage_root

        section["storage_root"] = str(storage_root(config))
    elif name == "ibm_cos":
        from ephemera.storage.ibm_cos.config import cos_settings

        cos = cos_settings(config)
        section.update(region=cos.region, endpoint=cos.endpoint)
        if cos.auth == "hmac":
            section.update(access_key_id=cos.access_key_id, secret_access_key=cos.secret_access_key)
        else:
            section.update(api_key=cos.api_key, service_instance_id=cos.service_instance_id, auth_endpoint=cos.auth_endpoint)
    else:
        section.update({k: v for k, v in config[name].items() if v})
    return {"backend": name, name: section}
