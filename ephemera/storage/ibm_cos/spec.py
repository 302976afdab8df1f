"""What the ibm_cos backend tells Ephemera (see :mod:`ephemera.storage.spec`).

It reads ``ibm_cos`` and the shared IBM account section ``ibm`` (its API key is
the IAM fallback). VMs get the region and endpoint (the region's direct endpoint
unless one is set: they live in a VPC) and either the trusted profile they
authenticate as (``trusted_profile_id``: no key on the VM at all). No key is ever
handed to a cloud VM: COS has no way to mint per-run, scoped, short-lived HMAC keys,
so a controller with HMAC keys and no trusted profile is refused at apply (its keys
are the whole instance's, valid until revoked). Only VMs on the controller's own
machine (the local stack), which could read the config file anyway, get the HMAC
keys, delivered once through a presigned object. An IAM API key is never handed to a VM.

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
from ephemera.storage.ibm_cos.config import DOMAIN, COSSection, cos_endpoint, cos_settings
from ephemera.storage.ibm_cos.identity import IDENTITY_KIND, METADATA_VERSION
from ephemera.storage.spec import RunScope, StorageBackendSpec, VMAccess

LITHOPS_PARENT = "ibm"  # the Lithops section whose keys the ibm_cos section inherits
FROM_LITHOPS_KEYS = ("region", "endpoint", "access_key_id", "secret_access_key", "service_instance_id", "auth_endpoint")


class IBMCOSSpec(StorageBackendSpec):
    name = "ibm_cos"
    sections = {"ibm_cos": COSSection, "ibm": IBMAccount}
    storage_class = "ephemera.storage.ibm_cos.backend:IBMCOSStorage"
    url_schemes = ("cos",)
    vm_extras = ("cos",)
    action_extras = ("ibm",)  # the COS SDK and IAM

    def check(self, config):
        return cos_settings(config)

    def vm_access(self, config) -> VMAccess:
        cos = config.section(COSSection)
        section = {"region": cos.region, "endpoint_type": "direct" if not cos.endpoint else cos.endpoint_type}
        if cos.endpoint:
            section["endpoint"] = cos.endpoint
        if cos.trusted_profile_id:
            section.update(trusted_profile_id=cos.trusted_profile_id, metadata_url=cos.metadata_url)
            # what a VM's bootstrap needs before Ephemera is installed: the metadata service
            # gives it an IAM token of the profile, COS takes it as a bearer token
            identity = {
                "kind": IDENTITY_KIND,
                "profile_id": cos.trusted_profile_id,
                "metadata_url": cos.metadata_url,
                "metadata_version": METADATA_VERSION,
                "endpoint": cos.endpoint or cos_endpoint(cos.region, section["endpoint_type"]),
            }
            return VMAccess(section=section, identity=identity, variables={"trusted_profile_id": cos.trusted_profile_id})
        if cos.access_key_id:
            return VMAccess(
                section=section, credentials={"access_key_id": cos.access_key_id, "secret_access_key": cos.secret_access_key}
            )
        raise ConfigError(
            "ibm_cos.trusted_profile_id",
            "missing: with IAM the run's VMs need an identity of their own "
            "(an API key is never handed to a VM, and COS presigns only with HMAC keys)",
            "create a trusted profile for the VMs (docs/ibm-cloud.md, 'Create once', step 5) and set its id, or use HMAC keys",
        )

    def vm_credentials(self, config, access: VMAccess, scope: RunScope) -> dict | None:
        if access.identity is not None or not access.credentials:
            return None
        if not scope.vms_on_host:
            raise ConfigError(
                "ibm_cos.trusted_profile_id",
                "missing: the run's cloud VMs would get the controller's HMAC keys "
                "(long-lived, instance-wide: COS cannot scope or expire them per run)",
                "create a trusted profile for the VMs (docs/ibm-cloud.md, 'Create once', step 5) and set ibm_cos.trusted_profile_id; "
                "the controller may keep its HMAC keys, the VMs then authenticate as the profile",
            )
        return dict(access.credentials)

    def to_lithops(self, config) -> dict:
        """Ephemera's own resolution: the endpoint derived from region and endpoint_type, HMAC
        keys when set, else IAM with the api_key falling back to ibm.iam_api_key."""
        cos = cos_settings(config)
        section: dict[str, str | None] = {"region": cos.region, "endpoint": cos.endpoint}
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
            raise ConfigError(
                "ibm_cos.api_key", "no credentials", "set HMAC keys, or api_key (or ibm.iam_api_key) with service_instance_id"
            )
        return section

    def change_feed_endpoint(self, config) -> str:
        """The host the COS changes feed watches: the configured endpoint, or the region's private one."""
        cos = config.section(COSSection)
        if cos.endpoint:
            return cos.endpoint.split("://", 1)[-1].rstrip("/")
        return f"s3.private.{cos.region}.{DOMAIN}"
