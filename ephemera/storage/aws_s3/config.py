"""Settings of the aws_s3 backend, read from the ``aws_s3`` config section.

``endpoint`` empty means AWS itself; otherwise any S3-compatible URL such as
``http://127.0.0.1:9000`` (MinIO). Keys empty means the AWS default credential chain
(environment, profile, instance role). Secret fields are kept out of ``repr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ephemera.config import Config, check_url
from ephemera.errors import ConfigError


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


def s3_settings(config: Config) -> S3Settings:
    """The ``aws_s3`` section as :class:`S3Settings`; raises ConfigError on a bad value."""
    section = config["aws_s3"]
    if bool(section["access_key_id"]) != bool(section["secret_access_key"]):
        missing = "secret_access_key" if section["access_key_id"] else "access_key_id"
        raise ConfigError(f"aws_s3.{missing}", "missing while its pair is set", "set both keys, or neither to use the AWS default chain")
    if section["session_token"] and not section["access_key_id"]:
        raise ConfigError("aws_s3.session_token", "set without aws_s3.access_key_id", "a session token comes with temporary keys; set all three")
    return S3Settings(
        endpoint=check_url("aws_s3.endpoint", section["endpoint"]),
        region=section["region"] or "us-east-1",
        access_key_id=section["access_key_id"] or None,
        secret_access_key=section["secret_access_key"] or None,
        session_token=section["session_token"] or None,
    )
