"""Ephemera storage config <-> Lithops storage sections.

Lithops names its storage sections as Ephemera names its backends (``localhost``,
``aws_s3``, ``ibm_cos``), with other key names: ``storage_bucket`` for the bucket,
and for ``localhost`` the bridge's own ``storage_root``. :func:`to_lithops` gives the
Lithops section of an Ephemera config (what a run's VMs and ``ephemera
lithops-config`` hand to Lithops code); :func:`from_lithops` the Ephemera config of a
Lithops storage section (what ``lithops_bridge.Storage`` is built from).
"""

from __future__ import annotations

from typing import Any

from ephemera.errors import ConfigError

DEFAULT_LITHOPS_BUCKET = "lithops-bridge"  # the bridge's default when a Lithops config names no bucket


def to_lithops(config: Any) -> dict:
    """``{"backend": name, name: section}`` of a validated Ephemera config, on its state bucket.

    ``ibm_cos`` gets Ephemera's own resolution: the endpoint derived from ``region``
    and ``endpoint_type``, HMAC keys when set, else IAM with ``api_key`` falling back
    to ``ibm.iam_api_key`` (plus ``service_instance_id`` and the token URL)."""
    name = config["storage"]["backend"]
    section: dict = {"storage_bucket": config.state_bucket}
    if name == "localhost":
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


def from_lithops(storage_config: dict) -> tuple[dict, str]:
    """(Ephemera config dict, bucket) for a Lithops storage config ``{"backend", <name>: {...}}``."""
    name = storage_config.get("backend", "localhost")
    section = dict(storage_config.get(name) or {})
    if name == "localhost":
        section.setdefault("storage_bucket", DEFAULT_LITHOPS_BUCKET)
    bucket = section.get("storage_bucket")
    if not bucket:
        raise ConfigError(f"{name}.storage_bucket", "missing", "name the bucket Lithops data goes to")
    cfg: dict = {"storage": {"backend": name, "bucket": bucket}}
    if name == "localhost":
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


def open_lithops_storage(storage_config: dict):
    """(Storage, bucket) for a Lithops storage config: the backend Lithops code writes to."""
    from ephemera.storage import get_storage

    cfg, bucket = from_lithops(storage_config)
    return get_storage(cfg), bucket
