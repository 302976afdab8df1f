"""What the aws_s3 backend tells Ephemera (see :mod:`ephemera.storage.spec`).

VMs get the endpoint and region and, when the controller has keys (or a role to mint
with, ``aws_s3.vm_role_arn``), per-run temporary keys from STS whose session policy
names only the run's prefixes (:mod:`ephemera.storage.aws_s3.sts`), delivered once
through a presigned credentials object; the controller's own keys never leave it.
With the AWS default chain and no role the VMs get nothing (an instance role of
theirs). The Lithops ``aws_s3``
section has the same keys as Ephemera's, with credentials possibly in Lithops'
``aws`` section and ``region_name`` as an older name of ``region``; its
``storage_bucket`` is required. Lithops code names objects ``aws_s3://`` or ``s3://``.
"""

from __future__ import annotations

from ephemera.errors import ConfigError
from ephemera.sections import check_url
from ephemera.storage.aws_s3.config import S3Section, s3_settings
from ephemera.storage.spec import RunScope, StorageBackendSpec, VMAccess

LITHOPS_PARENT = "aws"  # the Lithops section whose keys the aws_s3 section inherits
CONTROLLER_ONLY = (
    "vm_role_arn",
    "vm_role_max_session_seconds",
    "sts_endpoint",
)  # how VM keys are minted: not a VM's, not Lithops'


def complete_s3_compatible(name: str, parent: str, data: dict) -> dict:
    """A Lithops S3-style storage section over its parent section's keys; the bucket is required."""
    section = {**dict(data.get(parent) or {}), **dict(data.get(name) or {})}
    if "region_name" in section:
        section.setdefault("region", section.pop("region_name"))
    if not section.get("storage_bucket"):
        raise ConfigError(f"{name}.storage_bucket", "missing", "name the bucket Lithops data goes to")
    return section


class AwsS3Spec(StorageBackendSpec):
    name = "aws_s3"
    sections = {"aws_s3": S3Section}
    storage_class = "ephemera.storage.aws_s3.backend:S3Storage"
    url_schemes = ("s3",)
    vm_extras = ("aws",)
    action_extras = ("aws",)  # boto3 (the Lambda runtime's own; OpenWhisk and Code Engine install it)

    def check(self, config):
        check_url("aws_s3.sts_endpoint", config.section(S3Section).sts_endpoint)
        return s3_settings(config)

    def complete_lithops(self, data: dict) -> dict:
        return complete_s3_compatible(self.name, LITHOPS_PARENT, data)

    def vm_access(self, config) -> VMAccess:
        own = config.section(S3Section)
        return VMAccess(section={k: v for k, v in (("endpoint", own.endpoint), ("region", own.region)) if v})

    def _minting(self, config) -> tuple | None:
        """(settings, role arn, role max, STS endpoint) when the VMs get minted keys, else None."""
        own, settings = config.section(S3Section), s3_settings(config)
        if not (settings.access_key_id or own.vm_role_arn):
            return None  # the AWS default chain on both sides: the VMs use their own (an instance role)
        if not own.vm_role_arn and settings.session_token:
            raise ConfigError(
                "aws_s3.vm_role_arn",
                "missing: the controller's keys are temporary, and STS mints "
                "federation tokens only from an IAM user's long-term keys",
                "set aws_s3.vm_role_arn to a role the controller may assume for the run's VMs",
            )
        return settings, own.vm_role_arn, int(own.vm_role_max_session_seconds), own.sts_endpoint or settings.endpoint

    def vm_credentials(self, config, access: VMAccess, scope: RunScope) -> dict | None:
        from ephemera.storage.aws_s3 import sts  # cold start: spec modules load with every config, this only when used

        minting = self._minting(config)
        if minting is None:
            return None
        settings, role, most, endpoint = minting
        return sts.mint(settings, scope.run_id, sts.session_policy(scope), scope.seconds, role, most, endpoint)

    def vm_presigner(self, config, scope: RunScope, objects: list, seconds: int):
        from ephemera.storage.aws_s3 import sts  # cold start: spec modules load with every config, this only when used
        from ephemera.storage.aws_s3.backend import (
            S3Storage,
        )  # cold start: spec modules load with every config, this only when used
        from ephemera.storage.aws_s3.config import (
            S3Settings,
        )  # cold start: spec modules load with every config, this only when used

        minting = self._minting(config)
        if minting is None:
            return None
        settings, role, most, endpoint = minting
        keys = sts.mint(settings, scope.run_id, sts.boot_policy(objects), seconds, role, most, endpoint)
        return S3Storage(S3Settings(endpoint=settings.endpoint, region=settings.region, **keys))

    def to_lithops(self, config) -> dict:
        return {k: v for k, v in self.own_section(config).items() if v and k not in CONTROLLER_ONLY}
