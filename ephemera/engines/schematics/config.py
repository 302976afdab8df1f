"""Config of the Schematics engine: the ``schematics`` section and the settings read from a loaded config.

Keys (named as Lithops names its IBM keys): ``ibm.iam_api_key``, ``ibm.iam_url``,
``schematics.workspace_id``, and ``schematics.url`` or ``schematics.region``. The
service URL is always set explicitly: the 1.1.0 SDK defaults to a development URL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from pydantic import Field

from ephemera.errors import ConfigError
from ephemera.ibm import DEFAULT_IAM_URL, IBMAccount
from ephemera.sections import Section, check_url, secret

if TYPE_CHECKING:
    from ephemera.config import Config

# Locations where Schematics runs workspaces (cloud.ibm.com/docs/schematics?topic=schematics-locations).
# Each has its own API endpoint; the geographies "us" and "eu" have one too.
REGIONS = ("us-south", "us-east", "eu-de", "eu-gb", "ca-tor", "us", "eu")
# IAM issues a refresh token only to these client credentials (as the ibmcloud CLI does).
REFRESH_TOKEN_CLIENT = ("bx", "bx")


def service_url_for_region(region: str) -> str:
    """The public Schematics API endpoint of a location, e.g. ``https://us-south.schematics.cloud.ibm.com``."""
    if region not in REGIONS:
        raise ConfigError(
            "schematics.region",
            f"'{region}' is not a Schematics location",
            f"use one of {', '.join(REGIONS)}, or set schematics.url",
        )
    return f"https://{region}.schematics.cloud.ibm.com"


class SchematicsSection(Section):
    """One IBM Cloud Schematics workspace, built from the ibm-vpc-gpu stack."""

    workspace_id: Optional[str] = Field(None, description="the Schematics workspace's id")
    region: str = Field("us-south", description=f"Schematics location: {' | '.join(REGIONS)}")
    url: Optional[str] = Field(None, description="overrides the API endpoint derived from region")
    secure_variables: Optional[dict] = secret(
        "secure variables of the workspace to keep: Schematics never returns their values, and each apply rewrites the store"
    )


@dataclass(frozen=True)
class SchematicsSettings:
    """What the engine needs to reach one Schematics workspace."""

    api_key: str  # IAM API key (secret: never logged)
    iam_url: str  # IAM base URL; the token path /identity/token is appended by the SDK
    workspace_id: str  # the Schematics workspace built from terraform/ibm-vpc-gpu
    service_url: str  # the Schematics API endpoint, explicit
    max_attempts: int = 5  # calls retried on 429/502/503/504/connection reset, at most this often
    backoff_seconds: float = 2.0  # first retry delay; doubled on each further attempt
    log_tail_lines: int = 40  # lines of the activity log kept in the run record
    secure_variables: dict = field(default_factory=dict, repr=False)  # operator's secure workspace variables to send back

    def __repr__(self) -> str:  # never show the API key
        return (
            f"SchematicsSettings(workspace_id={self.workspace_id!r}, service_url={self.service_url!r}, iam_url={self.iam_url!r})"
        )

    @classmethod
    def from_config(cls, config: Config) -> "SchematicsSettings":
        own, ibm = config.section(SchematicsSection), config.section(IBMAccount)
        workspace_id = own.workspace_id
        if not workspace_id:
            raise ConfigError(
                "schematics.workspace_id", "missing", "create a Schematics workspace from terraform/ibm-vpc-gpu and set its id"
            )
        api_key = ibm.iam_api_key
        if not api_key:
            raise ConfigError("ibm.iam_api_key", "missing", "Schematics needs an IAM API key")
        url = check_url("schematics.url", own.url, "https://us-south.schematics.cloud.ibm.com")
        url = url or service_url_for_region(own.region)
        iam_url = check_url("ibm.iam_url", ibm.iam_url, DEFAULT_IAM_URL) or DEFAULT_IAM_URL
        return cls(
            api_key=api_key,
            iam_url=iam_url,
            workspace_id=workspace_id,
            service_url=url,
            secure_variables=dict(own.secure_variables or {}),
        )
