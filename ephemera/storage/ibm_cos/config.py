"""Config of the ibm_cos backend: the ``ibm_cos`` section, endpoint derivation and the choice of credentials.

Endpoint: ``ibm_cos.endpoint`` if set, else derived from ``ibm_cos.region`` and
``ibm_cos.endpoint_type`` as IBM documents them (regional, cross-region and
single-site locations all follow the same pattern)::

    public   https://s3.<region>.cloud-object-storage.appdomain.cloud
    private  https://s3.private.<region>.cloud-object-storage.appdomain.cloud
    direct   https://s3.direct.<region>.cloud-object-storage.appdomain.cloud

Credentials: HMAC keys (``access_key_id`` + ``secret_access_key``) when set, else
IAM: ``api_key`` (default ``ibm.iam_api_key``) with ``service_instance_id``, and the
token URL ``auth_endpoint`` (default ``ibm.iam_url`` + ``/identity/token``), else the
trusted profile ``trusted_profile_id`` through the VPC instance metadata service at
``metadata_url`` (on a run's VMs, which hold no key at all). ``trusted_profile_id``
on the controller names the profile the VMs authenticate as.
Secret fields are kept out of ``repr``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Optional, get_args

from pydantic import Field

from ephemera.errors import ConfigError
from ephemera.ibm import DEFAULT_IAM_URL, IBMAccount
from ephemera.sections import Section, check_url, secret
from ephemera.storage.claims import DEFAULT_SETTLE, DEFAULT_STALE_AFTER

if TYPE_CHECKING:
    from ephemera.config import Config

EndpointType = Literal["public", "private", "direct"]
ENDPOINT_TYPES: tuple[str, ...] = get_args(EndpointType)
DOMAIN = "cloud-object-storage.appdomain.cloud"
TOKEN_PATH = "/identity/token"
METADATA_URL = "http://169.254.169.254"  # the VPC instance metadata service, from inside an instance
_REGION_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class COSSection(Section):
    """IBM Cloud Object Storage: HMAC keys, or IAM (api_key, default ibm.iam_api_key, with service_instance_id)."""

    region: str = Field("us-east", description="COS location, e.g. us-south, eu-de, us (cross-region), ams03 (single site)")
    endpoint: Optional[str] = Field(None, description="overrides the endpoint derived from region and endpoint_type")
    endpoint_type: EndpointType = Field(
        "public", description="which endpoint of the region: direct from a VPC, private from classic infrastructure"
    )
    access_key_id: Optional[str] = secret("HMAC access key id")
    secret_access_key: Optional[str] = secret("HMAC secret access key")
    api_key: Optional[str] = secret("IAM API key; defaults to ibm.iam_api_key")
    service_instance_id: Optional[str] = Field(None, description="COS instance CRN or GUID (IAM only)")
    auth_endpoint: Optional[str] = Field(None, description="IAM token URL; defaults to <ibm.iam_url>/identity/token")
    trusted_profile_id: Optional[str] = Field(
        None, description="IAM trusted profile (Profile-...) the run's VMs authenticate as, through the VPC metadata service"
    )
    metadata_url: str = Field(METADATA_URL, description="the VPC instance metadata service the VMs get their tokens from")
    claim_settle: float = Field(
        DEFAULT_SETTLE,
        ge=0,
        lt=DEFAULT_STALE_AFTER,
        description="seconds a create-only-if-absent waits between writing its claim and listing the claims (COS has "
        "no conditional PUT): must exceed the slowest PUT plus the clock skew between callers; lower it only for a "
        "store on this machine",
    )


@dataclass(frozen=True)
class COSSettings:
    """What the IBM COS client is built from."""

    endpoint: str  # service URL
    region: str  # location, e.g. us-south, eu-de, us (cross-region), ams03 (single site)
    auth: str  # "hmac", "iam" or "trusted_profile"
    access_key_id: str | None = field(default=None, repr=False)  # HMAC key id
    secret_access_key: str | None = field(default=None, repr=False)  # HMAC secret
    api_key: str | None = field(default=None, repr=False)  # IAM API key
    service_instance_id: str | None = None  # COS instance CRN or GUID (IAM only)
    auth_endpoint: str | None = None  # IAM token URL (IAM only)
    trusted_profile_id: str | None = None  # the trusted profile VMs authenticate as (trusted_profile only)
    metadata_url: str = METADATA_URL  # the VPC instance metadata service (trusted_profile only)

    def secret_values(self) -> list[str]:
        return [v for v in (self.access_key_id, self.secret_access_key, self.api_key) if v]


def cos_endpoint(region: str, endpoint_type: str = "public") -> str:
    """The documented endpoint URL of a COS location and endpoint type."""
    if endpoint_type not in ENDPOINT_TYPES:
        raise ConfigError(
            "ibm_cos.endpoint_type",
            f"'{endpoint_type}' is not one of {', '.join(ENDPOINT_TYPES)}",
            "use public outside IBM Cloud, direct from a VPC, private from classic infrastructure",
        )
    if not region or not _REGION_RE.match(region):
        raise ConfigError(
            "ibm_cos.region",
            f"'{region}' is not a COS location",
            "use e.g. us-south, eu-de, us, eu, ap or ams03; or set ibm_cos.endpoint",
        )
    infix = "" if endpoint_type == "public" else f"{endpoint_type}."
    return f"https://s3.{infix}{region}.{DOMAIN}"


def cos_settings(config: Config) -> COSSettings:
    """The ``ibm_cos`` section (with ``ibm`` defaults) as :class:`COSSettings`."""
    cos, ibm = config.section(COSSection), config.section(IBMAccount)
    endpoint = check_url("ibm_cos.endpoint", cos.endpoint) or cos_endpoint(cos.region, cos.endpoint_type)
    if cos.access_key_id or cos.secret_access_key:
        if not (cos.access_key_id and cos.secret_access_key):
            missing = "secret_access_key" if cos.access_key_id else "access_key_id"
            raise ConfigError(f"ibm_cos.{missing}", "missing while its HMAC pair is set", "set both HMAC keys")
        return COSSettings(endpoint, cos.region, "hmac", access_key_id=cos.access_key_id, secret_access_key=cos.secret_access_key)
    api_key = cos.api_key or ibm.iam_api_key
    if not api_key and cos.trusted_profile_id:  # a run's VM: its identity, no key
        return COSSettings(
            endpoint,
            cos.region,
            "trusted_profile",
            trusted_profile_id=cos.trusted_profile_id,
            metadata_url=check_url("ibm_cos.metadata_url", cos.metadata_url) or METADATA_URL,
        )
    if not api_key:
        raise ConfigError(
            "ibm_cos.api_key",
            "no credentials",
            "set HMAC keys, or ibm_cos.api_key / ibm.iam_api_key with ibm_cos.service_instance_id "
            "(or, on a run's VM, ibm_cos.trusted_profile_id)",
        )
    if not cos.service_instance_id:
        raise ConfigError("ibm_cos.service_instance_id", "missing for IAM authentication", "set the COS instance CRN or GUID")
    auth_endpoint = check_url("ibm_cos.auth_endpoint", cos.auth_endpoint)
    if not auth_endpoint:
        auth_endpoint = (check_url("ibm.iam_url", ibm.iam_url) or DEFAULT_IAM_URL) + TOKEN_PATH
    return COSSettings(
        endpoint, cos.region, "iam", api_key=api_key, service_instance_id=cos.service_instance_id, auth_endpoint=auth_endpoint
    )
