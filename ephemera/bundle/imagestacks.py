"""Where a cloud image build happens: its two workspaces, their engines, and the builder VM's power state.

A build (:mod:`ephemera.bundle.cloudimage`) has two workspaces, each applied through the
ordinary engine interface (:class:`~ephemera.engines.base.WorkspaceEngine`):

- the *builder* (``terraform/<cloud>-image-builder``): a network and one VM that installs
  the lock and powers itself off; destroyed at the end of every build;
- the *image* (``terraform/<cloud>-image``): only the image made from the builder's VM,
  kept until ``ephemera image delete``.

With the ``terraform`` engine each workspace is a working directory under
``<home>/image-workspaces/`` (not ``workspaces/``: the run engine's orphan sweep must never
destroy an image with a run stack's files), with the stack folder the build names. With
``schematics`` each is a Schematics workspace the operator created from that stack folder,
named by its id. :class:`BuildPlace` says which; a build's ledger record carries it
(``event["image_build"]``), so the reaper rebuilds the builder's engine from the record alone
(:func:`build_engine`).

Whether the builder VM has powered off is the clouds' own answer: EC2 ``DescribeInstances``
(``State.Name`` "stopped") and the IBM VPC API ``GET /v1/instances/{id}`` (``status``
"stopped"), with an IAM token for the account's API key. Cloud SDKs are imported lazily.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ephemera.engines.base import WorkspaceEngine
from ephemera.errors import ImageBuildError, ImageError
from ephemera.ibm import IBMAccount
from ephemera.stack import STACKS_DIR, stack_spec

if TYPE_CHECKING:
    import urllib.request

CLOUDS = {"aws-ec2-gpu": "aws", "ibm-vpc-gpu": "ibm"}  # run stack -> the cloud its images are built on
WORKSPACES_DIR = "image-workspaces"  # in the Ephemera home: the terraform engine's build workspaces
VPC_API_VERSION = "2024-11-12"  # the IBM VPC API's required ``version`` date
BUILD_EVENT = "image_build"  # the key of a build's ledger record's event


@dataclass(frozen=True)
class BuildPlace:
    """Where one build's two workspaces are, and how to reach them."""

    cloud: str  # aws | ibm
    engine: str  # terraform | schematics
    builder_workspace: str  # the builder's workspace name (its ledger record's workspace)
    image_workspace: str  # the image's workspace name
    stacks: str  # the folder holding <cloud>-image-builder/ and <cloud>-image/ (terraform engine)
    builder_workspace_id: str | None = None  # schematics: the builder's Schematics workspace id
    image_workspace_id: str | None = None  # schematics: the image's Schematics workspace id
    vpc_url: str | None = None  # ibm: the VPC API endpoint the power state is read from

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def cloud_of(stack: str) -> str:
    """The cloud a run stack's images are built on; ImageError naming workspace.stack otherwise."""
    if stack not in CLOUDS:
        raise ImageError(
            "workspace.stack",
            f"stack '{stack}' has no cloud image builder",
            f"use one of {', '.join(CLOUDS)}, or the local stack for a local image",
        )
    return CLOUDS[stack]


def stack_names(cloud: str) -> tuple[str, str]:
    """The builder's and the image's stack folder names of ``cloud``."""
    return f"{cloud}-image-builder", f"{cloud}-image"


def engine_for(config, place: BuildPlace, which: str) -> WorkspaceEngine:
    """The engine of the build's ``which`` ("builder" | "image") workspace."""
    stack = stack_names(place.cloud)[0 if which == "builder" else 1]
    workspace = place.builder_workspace if which == "builder" else place.image_workspace
    if place.engine == "schematics":
        from ephemera.engines.schematics.engine import SchematicsEngine  # lazy: the Schematics SDK
        from ephemera.engines.schematics.config import SchematicsSettings  # ditto

        ws_id = place.builder_workspace_id if which == "builder" else place.image_workspace_id
        if not ws_id:
            flag = "--builder-workspace" if which == "builder" else "--image-workspace"
            raise ImageError(
                flag, f"names no Schematics workspace for the {which}", f"create one from terraform/{stack} and give its id"
            )
        schematics = SchematicsSettings.from_config(config)  # the run workspace's secure variables are not the build's
        return SchematicsEngine(dataclasses.replace(schematics, workspace_id=ws_id, secure_variables={}), workspace)
    from ephemera.engines.terraform.config import engine_config  # lazy: only the terraform engine's builds
    from ephemera.engines.terraform.engine import TerraformEngine  # ditto

    base = engine_config(config)
    state = base.state and dataclasses.replace(base.state, prefix=f"{base.state.prefix}-images")
    settings = dataclasses.replace(
        base, stack=stack_spec(str(Path(place.stacks) / stack)), workspaces_dir=Path(config.home) / WORKSPACES_DIR, state=state
    )
    return TerraformEngine(config, settings)


def default_stacks() -> str:
    return str(STACKS_DIR)


def place_of(event: dict) -> BuildPlace | None:
    """The build place a ledger record's event names; None for a run's event."""
    raw = (event or {}).get(BUILD_EVENT)
    if not isinstance(raw, dict):
        return None
    known = {f.name for f in dataclasses.fields(BuildPlace)}
    return BuildPlace(**{k: v for k, v in raw.get("place", {}).items() if k in known})


def build_engine(config, run) -> WorkspaceEngine | None:
    """The engine of an image build's builder workspace, for its ledger record ``run``; None
    for a run's record. The reaper destroys a dead build's builder with it."""
    place = place_of(run.event)
    if place is None:
        return None
    # the stack folders are ours, never the record's: a record in the bucket must not pick what Terraform runs
    return engine_for(config, dataclasses.replace(place, stacks=default_stacks()), "builder")


def instance_status(config, place: BuildPlace, instance_id: str, region: str) -> str:
    """The builder VM's state as its cloud reports it ("running", "stopped", ...)."""
    if place.cloud == "aws":
        import boto3  # lazy: a cloud SDK (endpoint and keys: boto3's own configuration)

        found = boto3.client("ec2", region_name=region).describe_instances(InstanceIds=[instance_id])
        return str(found["Reservations"][0]["Instances"][0]["State"]["Name"])
    return _ibm_instance_status(config, place.vpc_url or f"https://{region}.iaas.cloud.ibm.com", instance_id)


def _ibm_instance_status(config, vpc_url: str, instance_id: str) -> str:
    import urllib.request  # cold start: the reaper action imports this module; only a build reads the VPC API

    account = config.section(IBMAccount)
    if not account.iam_api_key:
        raise ImageError("ibm.iam_api_key", "missing", "the builder's power state is read from the VPC API with it")
    form = urllib.parse.urlencode({"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": account.iam_api_key})
    token = _json(urllib.request.Request(f"{account.iam_url}/identity/token", data=form.encode()), "IAM token")
    query = urllib.parse.urlencode({"version": VPC_API_VERSION, "generation": "2"})
    request = urllib.request.Request(
        f"{vpc_url}/v1/instances/{urllib.parse.quote(instance_id)}?{query}",
        headers={"Authorization": f"Bearer {token['access_token']}"},
    )
    return str(_json(request, "VPC instance")["status"])


def _json(request: urllib.request.Request, what: str) -> dict:
    import urllib.request  # cold start, as above

    try:
        with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310 - https endpoints from the config
            return json.loads(reply.read())
    except OSError as exc:  # HTTPError, URLError, timeouts; never the request (it holds the key or token)
        raise ImageBuildError(
            f"reading the {what} failed: {getattr(exc, 'code', '') or type(exc).__name__}",
            "check ibm.iam_url, the VPC endpoint and the API key's access",
            retryable=True,
        ) from None
