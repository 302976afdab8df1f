"""Where a cloud image build happens: its two workspaces, their engines, and the builder VM's power state.

A build (:mod:`ephemera.bundle.cloudimage`) has two workspaces, each applied through the
ordinary engine interface (:class:`~ephemera.engines.base.WorkspaceEngine`):

- the *builder* (the run stack's ``image_builder`` folder): a network and one VM that
  installs the lock and powers itself off; destroyed at the end of every build;
- the *image* (its ``image_stack`` folder): only the image made from the builder's VM,
  kept until ``ephemera image delete``.

Which run stacks have a builder, and of which image kind, is each registered stack's spec
(``image_kind``, ``image_builder``, ``image_stack`` in its ``stack.toml``). Which engine
drives a build workspace is the engine's spec
(:meth:`~ephemera.engines.spec.EngineSpec.workspace_engine`): with ``terraform`` a working
directory under ``<home>/image-workspaces/`` (not ``workspaces/``: the run engine's orphan
sweep must never destroy an image with a run stack's files); with ``schematics`` the
Schematics workspace the operator created from that stack folder, named by its id.
:class:`BuildPlace` says which; a build's ledger record carries it
(``event["image_build"]``), so the reaper rebuilds the builder's engine from the record
alone (:func:`build_engine`), from the shipped stack folders only.

Whether the builder VM has powered off is the cloud's own answer, asked of the run stack's
hooks (:class:`~ephemera.stack.hooks.PowerStateView`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ephemera.engines import engine_spec
from ephemera.engines.base import WorkspaceEngine
from ephemera.errors import ImageError
from ephemera.stack import STACKS_DIR, StackSpec, registered_stacks, stack_hooks, stack_spec
from ephemera.stack.hooks import PowerStateView

WORKSPACES_DIR = "image-workspaces"  # in the Ephemera home: the terraform engine's build workspaces
STATE_SUFFIX = "-images"  # the terraform engine's S3 state of build workspaces: under <prefix>-images
BUILD_EVENT = "image_build"  # the key of a build's ledger record's event


@dataclass(frozen=True)
class BuildPlace:
    """Where one build's two workspaces are, and how to reach them."""

    cloud: str  # the image kind (the run stack's image_kind): aws | ibm
    engine: str  # the engine's registry name (engine.backend)
    builder_workspace: str  # the builder's workspace name (its ledger record's workspace)
    image_workspace: str  # the image's workspace name
    stacks: str  # the folder holding the builder's and the image's stack folders (terraform engine)
    builder_workspace_id: str | None = None  # an engine that cannot create workspaces: the builder's id
    image_workspace_id: str | None = None  # ditto, the image's
    vpc_url: str | None = None  # the API endpoint the builder's power state is read from (None: the region's)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _builders() -> dict[str, StackSpec]:
    """Registered run stack name -> its spec, for each stack with an image builder."""
    return {spec.name: spec for spec in registered_stacks() if spec.image_kind}


def cloud_of(stack: str) -> str:
    """The image kind a run stack's images are built as; ImageError naming workspace.stack otherwise."""
    builders = _builders()
    if stack not in builders:
        raise ImageError(
            "workspace.stack",
            f"stack '{stack}' has no cloud image builder",
            f"use one of {', '.join(builders)}, or the local stack for a local image",
        )
    return builders[stack].image_kind


def _run_stack(cloud: str) -> StackSpec:
    """The registered run stack whose images are of kind ``cloud`` (never a folder a record names)."""
    found = next((spec for spec in _builders().values() if spec.image_kind == cloud), None)
    if found is None:
        raise ImageError(
            "kind", f"'{cloud}' is no image kind a registered stack builds", "build on a stack with an image builder"
        )
    return found


def stack_names(cloud: str) -> tuple[str, str]:
    """The builder's and the image's stack folder names of ``cloud``."""
    spec = _run_stack(cloud)
    return spec.image_builder, spec.image_stack


def engine_for(config, place: BuildPlace, which: str) -> WorkspaceEngine:
    """The engine of the build's ``which`` ("builder" | "image") workspace."""
    builder = which == "builder"
    stack = stack_names(place.cloud)[0 if builder else 1]
    return engine_spec(place.engine).workspace_engine(
        config,
        stack_dir=Path(place.stacks) / stack,
        workspace=place.builder_workspace if builder else place.image_workspace,
        workspace_id=place.builder_workspace_id if builder else place.image_workspace_id,
        workspaces_dir=Path(config.home) / WORKSPACES_DIR,
        state_suffix=STATE_SUFFIX,
        field="--builder-workspace" if builder else "--image-workspace",
    )


def default_stacks() -> str:
    return str(STACKS_DIR)


def default_region(place: BuildPlace) -> str:
    """The region a build happens in when its variables name none: the builder stack's default."""
    var = stack_spec(str(Path(place.stacks) / stack_names(place.cloud)[0])).variables.get("region")
    return str(var.default) if var is not None and var.default else ""


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
    """The builder VM's state as its cloud reports it ("running", "stopped", ...), from the run stack's hooks."""
    spec = _run_stack(place.cloud)
    hooks = stack_hooks(spec)
    if not isinstance(hooks, PowerStateView):
        raise ImageError(
            "workspace.stack",
            f"the hooks of stack '{spec.name}' cannot read an instance's power state",
            "give its hooks class an instance_power_state (ephemera.stack.hooks.PowerStateView)",
        )
    return hooks.instance_power_state(config, instance_id, region, place.vpc_url)
