"""IBM Cloud Object Storage through ibm-cos-sdk (``ibm_boto3``), HMAC or IAM.

Every operation comes from :class:`~ephemera.storage.aws_s3.backend.S3CompatibleStorage`
(the SDK is a fork of boto3 with the same client API). Differences:

- IAM: the client is built with ``ibm_api_key_id``, ``ibm_service_instance_id``,
  ``ibm_auth_endpoint`` and ``signature_version="oauth"``; the SDK fetches a token
  from IAM and sends ``Authorization: Bearer <token>``, refreshing it itself.
- Trusted profile (a run's VM): ``auth_function`` with the tokens of the VPC metadata
  service (:mod:`ephemera.storage.ibm_cos.identity`), ``signature_version="oauth"``.
- ``presign`` needs HMAC keys (the SDK has no query signer for OAuth tokens): with IAM
  or a trusted profile it returns None, and VMs use their own identity instead.
- ``put_if_absent`` never sends ``If-None-Match`` (not documented for COS, and the
  SDK does not know the parameter): it uses :mod:`ephemera.storage.claims`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ephemera.storage.aws_s3.backend import MAX_ATTEMPTS, S3CompatibleStorage, client_config_options
from ephemera.storage.base import StorageTraits
from ephemera.storage.ibm_cos.config import COSSection, COSSettings, cos_settings

if TYPE_CHECKING:
    from ephemera.config import Config


class IBMCOSStorage(S3CompatibleStorage):
    backend = "ibm_cos"
    conditional_put = False  # always the claim protocol
    traits = StorageTraits(conditional_put=False, paged_listing=True, same_host=False, fs_events=False, buckets_on_demand=False)
    credentials_hint = (
        "check ibm_cos.access_key_id/secret_access_key (HMAC), or ibm_cos.api_key "
        "(or ibm.iam_api_key) and ibm_cos.service_instance_id (IAM)"
    )

    def __init__(self, settings: COSSettings, *, max_attempts: int = MAX_ATTEMPTS, **options: Any):
        """``options``: ``page_size``, ``claim_settle`` (see S3CompatibleStorage)."""
        import ibm_boto3  # cloud SDK: imported only when this client is first used
        from ibm_botocore.client import Config as COSConfig  # cloud SDK: imported only when this client is first used

        self.settings = settings
        session = ibm_boto3.session.Session()
        config_options = client_config_options(custom_endpoint=True, max_attempts=max_attempts)
        if settings.auth == "trusted_profile":
            from ephemera.storage.ibm_cos.identity import (
                trusted_profile_auth,
            )  # cloud SDK (IBM token manager): only on a VM with a trusted profile

            client = session.client(
                "s3",
                endpoint_url=settings.endpoint,
                auth_function=trusted_profile_auth(settings.trusted_profile_id or "", settings.metadata_url),
                config=COSConfig(signature_version="oauth", **config_options),
            )
        elif settings.auth == "iam":
            client = session.client(
                "s3",
                endpoint_url=settings.endpoint,
                ibm_api_key_id=settings.api_key,
                ibm_service_instance_id=settings.service_instance_id,
                ibm_auth_endpoint=settings.auth_endpoint,
                config=COSConfig(signature_version="oauth", **config_options),
            )
        else:
            client = session.client(
                "s3",
                endpoint_url=settings.endpoint,
                # no region_name, as Lithops does: COS does not check the SigV4 region scope
                aws_access_key_id=settings.access_key_id,
                aws_secret_access_key=settings.secret_access_key,
                config=COSConfig(signature_version="s3v4", **config_options),
            )
        super().__init__(client, settings.secret_values(), **options)

    def presign(self, bucket: str, key: str, method: str = "GET", expires: int = 3600) -> str | None:
        """A SigV4 URL with HMAC keys (COS sets no 7-day cap); None with IAM tokens."""
        if self.settings.auth != "hmac":
            return None
        return super().presign(bucket, key, method, expires)

    @classmethod
    def from_config(cls, config: Config, **options: Any) -> "IBMCOSStorage":
        return cls(cos_settings(config), **{"claim_settle": config.section(COSSection).claim_settle, **options})

    def __repr__(self) -> str:
        return f"IBMCOSStorage(endpoint={self.settings.endpoint!r}, auth={self.settings.auth!r})"
