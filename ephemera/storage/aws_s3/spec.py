"""What the aws_s3 backend tells Ephemera (see :mod:`ephemera.storage.spec`).

VMs get the endpoint and region, and the configured keys once through a presigned
credentials object (none with the AWS default chain, e.g. an instance role). The Lithops ``aws_s3``
section has the same keys as Ephemera's, with credentials possibly in Lithops'
``aws`` section and ``region_name`` as an older name of ``region``; its
``storage_bucket`` is required. Lithops code names objects ``aws_s3://`` or ``s3://``.
"""

from __future__ import annotations

from ephemera.errors import ConfigError
from ephemera.storage.aws_s3.config import S3Section, s3_settings
from ephemera.storage.spec import StorageBackendSpec

LITHOPS_PARENT = "aws"  # the Lithops section whose keys the aws_s3 section inherits


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

    def check(self, config):
        return s3_settings(config)

    def complete_lithops(self, data: dict) -> dict:
        return complete_s3_compatible(self.name, LITHOPS_PARENT, data)
