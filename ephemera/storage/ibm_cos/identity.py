"""A VM's own identity for IBM COS: a trusted profile through the VPC instance metadata service.

The VM asks its metadata service for an instance identity token and trades it for an
IAM access token of the trusted profile linked to the instance (ibm-cloud-sdk-core's
``VPCInstanceTokenManager`` makes both calls). The COS client gets the token through
ibm-cos-sdk's ``auth_function`` hook, which calls it again before the token expires,
so a VM holds no key at all. Version ``2025-08-26`` of the metadata API uses the paths
``/identity/v1/token`` and ``/identity/v1/iam_tokens``.
"""

from __future__ import annotations

import time
from typing import Callable

IDENTITY_KIND = "vpc-trusted-profile"  # how a VM's boot document names this identity
METADATA_VERSION = "2025-08-26"  # one of the two versions sdk-core's VPC token manager accepts
TOKEN_LIFETIME = 300  # seconds an instance identity token lives (the service's default)


def trusted_profile_auth(profile_id: str, metadata_url: str) -> Callable[[], dict]:
    """An ``auth_function`` for ibm_boto3: ``{access_token, token_type, expires_in}`` of the profile."""
    from ibm_cloud_sdk_core.token_managers.vpc_instance_token_manager import (
        VPCInstanceTokenManager,
    )  # cloud SDK: imported only when this client is first used

    manager = VPCInstanceTokenManager(
        iam_profile_id=profile_id, url=metadata_url.rstrip("/"), token_lifetime=TOKEN_LIFETIME, service_version=METADATA_VERSION
    )

    def auth() -> dict:
        token = manager.get_token()  # cached by the manager until its refresh time
        left = max(60, int((manager.expire_time or time.time() + 3600) - time.time()))
        return {"access_token": token, "token_type": "Bearer", "expires_in": left}

    return auth
