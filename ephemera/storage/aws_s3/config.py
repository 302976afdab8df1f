"""Config of the aws_s3 backend: the ``aws_s3`` section and the settings the client is built from.

``endpoint`` empty means AWS itself; otherwise any S3-compatible URL such as
``http://127.0.0.1:9000`` (MinIO). Keys empty means the AWS default credential chain
(environment, profile, instance role). Secret fields are kept out of ``repr``.

The ``vm_*`` and ``sts_endpoint`` fields say how a run's VMs get their own per-run,
prefix-scoped, short-lived keys (:mod:`ephemera.storage.aws_s3.sts`); they stay on the
controller. Key *ids* are declared secret like the rest of a key: AWS calls the access
key id not a secret, but it names the account and is half the credential, and masking
it costs nothing; it never reaches Terraform either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from pydantic import Field

from ephemera.errors import ConfigError
from ephemera.sections import Section, check_url, secret


class S3Section(Section):
    """AWS S3 or any S3-compatible endpoint (MinIO, ...), through boto3."""

    endpoint: Optional[str] = Field(None, description="e.g. http://127.0.0.1:9000 for MinIO; empty for AWS")
    region: str = Field("us-east-1", description="the signing region")
    access_key_id: Optional[str] = secret("access key id; empty: the AWS default credential chain")
    secret_access_key: Optional[str] = secret("secret access key, with access_key_id")
    session_token: Optional[str] = secret("session token of temporary (STS) keys")
    vm_role_arn: Optional[str] = Field(
        None,
        description="IAM role the controller assumes (STS AssumeRole) to mint each run's "
        "VM credentials; empty: GetFederationToken with the configured keys",
    )
    vm_role_max_session_seconds: int = Field(
        3600,
        ge=900,
        le=43200,
        description="the role's MaxSessionDuration: a run whose hard timeout needs longer VM credentials is refused",
    )
    sts_endpoint: Optional[str] = Field(
        None, description="STS endpoint; default: aws_s3.endpoint when set (moto, MinIO), else AWS's"
    )


@dataclass(frozen=True)
class S3Settings:
    """What the S3 client is built from."""

    endpoint: str | None  # endpoint URL; None for AWS's own endpoints
    region: str  # signing region, e.g. us-east-1
    access_key_id: str | None = field(default=None, repr=False)  # None: AWS default credential chain
    secret_access_key: str | None = field(default=None, repr=False)  # pairs with access_key_id
    session_token: str | None = field(default=None, repr=False)  # temporary (STS) credentials only

    def secret_values(self) -> list[str]:
        return [v for v in (self.access_key_id, self.secret_access_key, self.session_token) if v]


def s3_settings(config) -> S3Settings:
    """The ``aws_s3`` section as :class:`S3Settings`; raises ConfigError on a bad value."""
    section = config.section(S3Section)
    if bool(section.access_key_id) != bool(section.secret_access_key):
        missing = "secret_access_key" if section.access_key_id else "access_key_id"
        raise ConfigError(
            f"aws_s3.{missing}", "missing while its pair is set", "set both keys, or neither to use the AWS default chain"
        )
    if section.session_token and not section.access_key_id:
        raise ConfigError(
            "aws_s3.session_token", "set without aws_s3.access_key_id", "a session token comes with temporary keys; set all three"
        )
    return S3Settings(
        endpoint=check_url("aws_s3.endpoint", section.endpoint),
        region=section.region or "us-east-1",
        access_key_id=section.access_key_id or None,
        secret_access_key=section.secret_access_key or None,
        session_token=section.session_token or None,
    )
