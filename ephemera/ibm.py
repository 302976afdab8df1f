"""The IBM Cloud account section, ``ibm``: one API key and IAM URL shared by the
``ibm_cos`` storage backend and the ``schematics`` engine (named as Lithops names its
IBM keys). Both declare it among their sections; the config holds it once.
"""

from __future__ import annotations

from pydantic import Field

from ephemera.sections import Section, secret

DEFAULT_IAM_URL = "https://iam.cloud.ibm.com"


class IBMAccount(Section):
    """The IBM Cloud account: Schematics, COS with IAM, and the IBM Terraform provider use it."""

    iam_api_key: str | None = secret("IAM API key of the account (Schematics; COS with IAM)")
    iam_url: str = Field(DEFAULT_IAM_URL, description="IAM base URL; tokens come from <iam_url>/identity/token")
