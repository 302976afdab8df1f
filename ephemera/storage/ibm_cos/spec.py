"""What the ibm_cos backend tells Ephemera (see :mod:`ephemera.storage.spec`).

It reads ``ibm_cos`` and the shared IBM account section ``ibm`` (its API key is
the IAM fallback). VMs get ``cos_region`` (and ``cos_endpoint`` when set; else they
use the region's direct endpoint), and HMAC keys as the secure variables
``cos_hmac_access_key_id`` / ``cos_hmac_secret_access_key``, or the IAM key as
``cos_api_key`` with ``cos_service_instance_id``.

Lithops' ``ibm_cos`` section takes credentials from its ``ibm`` section too; it
names the IAM key ``api_key`` or ``iam_api_key``, and may carry a
``private_endpoint`` used with ``use_private_endpoint``. Its ``storage_bucket`` is
required; ``region`` or ``endpoint`` too, and HMAC keys or an API key. Lithops code
names objects ``ibm_cos://`` or ``cos://``.
"""

from __future__ import annotations

from ephemera.errors import ConfigError
from ephemera.ibm import IBMAccount
from ephemera.storage.aws_s3.spec import complete_s3_compatible
from ephemera.storage.ibm_cos.config import DOMAIN, COSSection, cos_settings
from ephemera.storage.spec import StorageBackendSpec

LITHOPS_PARENT = "ibm"  # the Lithops section whose keys the ibm_cos section inherits
FROM_LITHOPS_KEYS = ("region", "endpoint", "access_key_id", "secret_access_key", "service_instance_id", "auth_endpoint")


class IBMCOSSpec(StorageBackendSpec):
    name = "ibm_cos"
    sections = {"ibm_cos": COSSection, "ibm": IBMAccount}
    storage_class = "ephemera.storage.ibm_cos.backend:IBMCOSStorage"
    url_schemes = ("cos",)

    def check(self, config):
        return cos_settings(config)

    def vm_variables(self, config) -> tuple[dict, dict]:
        cos = config["ibm_cos"]
        plain, secure = {"cos_region": cos["region"]}, {}
        if cos["endpoint"]:
            plain["cos_endpoint"] = cos["endpoint"]
        if cos["access_key_id"]:
            secure.update(cos_hmac_access_key_id=cos["access_key_id"], cos_hmac_secret_access_key=cos["secret_access_key"])
        else:
            secure["cos_api_key"] = cos["api_key"] or config["ibm"]["iam_api_key"]
            plain["cos_service_instance_id"] = cos["service_instance_id"]
        return plain, secure

    def to_lithops(self, config) -> dict:
        """Ephemera's own resolution: the endpoint derived from region and endpoint_type, HMAC
        keys when set, else IAM with the api_key falling back to ibm.iam_api_key."""
        cos = cos_settings(config)
        section = {"region": cos.region, "endpoint": cos.endpoint}
        if cos.auth == "hmac":
            section.update(access_key_id=cos.access_key_id, secret_access_key=cos.secret_access_key)
        else:
            section.update(api_key=cos.api_key, service_instance_id=cos.service_instance_id, auth_endpoint=cos.auth_endpoint)
        return section

    def from_lithops(self, section: dict) -> dict:
        out = {k: section[k] for k in FROM_LITHOPS_KEYS if section.get(k)}
        api_key = section.get("api_key") or section.get("iam_api_key")
        if api_key and not out.get("access_key_id"):
            out["api_key"] = api_key
        if section.get("private_endpoint") and section.get("use_private_endpoint"):
            out["endpoint"] = section["private_endpoint"]
        return {"ibm_cos": out}

    def complete_lithops(self, data: dict) -> dict:
        section = complete_s3_compatible(self.name, LITHOPS_PARENT, data)
        if not section.get("endpoint") and not section.get("region"):
            raise ConfigError("ibm_cos.region", "missing (and no ibm_cos.endpoint)", "set the COS region, e.g. us-east")
        hmac = (section.get("access_key_id"), section.get("secret_access_key"))
        if any(hmac) and not all(hmac):
            missing = "secret_access_key" if hmac[0] else "access_key_id"
            raise ConfigError(f"ibm_cos.{missing}", "missing while its HMAC pair is set", "set both HMAC keys")
        if not any(hmac) and not (section.get("api_key") or section.get("iam_api_key")):
            raise ConfigError("ibm_cos.api_key", "no credentials", "set HMAC keys, or api_key (or ibm.iam_api_key) with service_instance_id")
        return section

    def change_feed_endpoint(self, config) -> str:
        """The host the COS changes feed watches: the configured endpoint, or the region's private one."""
        cos = config["ibm_cos"]
        if cos["endpoint"]:
            return cos["endpoint"].split("://", 1)[-1].rstrip("/")
        return f"s3.private.{cos['region']}.{DOMAIN}"
