"""Building and deleting cloud prepared images (``ephemera image build|delete`` on aws / ibm stacks).

A build, through the engine interface only (so the same code drives Schematics and
Terraform here), in two workspaces (:mod:`ephemera.bundle.imagestacks`):

1. refuse unless the image workspace is empty (it holds one image at a time);
2. register the build in the ledger like a run (``event["image_build"]`` names its place)
   with a hard deadline, so the reaper destroys the builder of a build that dies;
3. apply the builder (a VM that installs the lock and powers itself off);
4. wait until the cloud reports that VM "stopped" (``timeout``);
5. apply the image workspace (the image from the stopped VM);
6. record the image (:class:`~ephemera.bundle.image.ImageRecord`) -- the commit point;
7. destroy the builder and confirm the engine holds nothing of it.

Any failure before 6 destroys what the image workspace got and the builder, and records
nothing. The lock's text goes to the builder as a Terraform variable; it holds package
pins and hashes only (the bundle's lock is checked for secrets when it is packed).
"""

from __future__ import annotations

import dataclasses

import logging
import secrets
import time
from datetime import timedelta
from typing import Callable

from ephemera import layout
from ephemera.runkeys import signing_key
from ephemera.bundle.image import (
    IMAGE_ID_FORMATS,
    ImageRecord,
    get_record,
    list_records,
    lock_sha256,
    put_record,
    record_signature,
    stack_name,
)
from ephemera.bundle.lock import compile_lock, pins, source_only_wheels, vm_requirements
from ephemera.bundle.pack import requirements, vm_extras
from ephemera.bundle.imagestacks import BUILD_EVENT, BuildPlace, default_region, default_stacks, engine_for, instance_status
from ephemera.engines.base import WorkspaceEngine
from ephemera.errors import ImageBuildError, ImageError
from ephemera.model.ledger import Ledger
from ephemera.model.runs import Activity, RunError, RunRecord, RunState
from ephemera.secrets import Scrubber
from ephemera.storage.base import Storage
from ephemera.timeutil import now_iso, now_utc

log = logging.getLogger("ephemera.image")
S = RunState
POLL_SECONDS = 10.0  # between polls of an activity or of the builder's power state
DEADLINE_MARGIN = 1800  # seconds past the build timeout before the reaper destroys a builder
# what a builder VM never comes back from (EC2 InstanceState names; IBM VPC instance statuses)
NEVER_STOPS = frozenset({"shutting-down", "terminated", "deleting", "failed"})
BUILD_FIX = "see `ephemera runs show {build}` for the build's record; fix the cause and build again"


def new_build_id(lock: str) -> str:
    """A build's id: its ledger record's run id (lowercase, unguessable)."""
    return f"img-{lock[:12]}-{now_utc().strftime('%Y%m%dt%H%M%S')}-{secrets.token_hex(6)}"


class CloudBuild:
    """One build of the image of ``lock_text`` for ``config``'s stack, at ``place``."""

    def __init__(self, config, storage: Storage, place: BuildPlace, lock_text: str, requirements: list[str], **opts):
        self.config, self.storage, self.place = config, storage, place
        self.lock_text, self.requirements = lock_text, list(requirements)
        self.lock = lock_sha256(lock_text)
        self.stack = stack_name(config)
        self.timeout = float(opts.get("timeout", 3600))  # seconds the builder VM has to power off
        self.poll = float(opts.get("poll", POLL_SECONDS))
        self.variables = dict(opts.get("variables") or {})  # the builder stack's own variables (region, profile...)
        self.sleep: Callable[[float], None] = opts.get("sleep", time.sleep)
        self.build_id = new_build_id(self.lock)
        self.ledger = Ledger(storage, config.state_bucket, scrubber=Scrubber(config.secret_values()))
        self.builder: WorkspaceEngine = engine_for(config, place, "builder")
        self.imager: WorkspaceEngine = engine_for(config, place, "image")

    # the steps ---------------------------------------------------------------------------
    def run(self) -> ImageRecord:
        self._check_workspaces()
        self._register()
        try:
            outputs = self._apply(self.builder, self.place.builder_workspace, self._builder_variables(), "builder")
            instance = _first(outputs.get("instance_ids"), "instance_ids")
            self._wait_stopped(instance)
            image_id = self._make_image(outputs, instance)
            record = self._record(image_id)
        except BaseException as exc:
            self._fail(exc)
            raise
        self._destroy_builder("image recorded; the builder is destroyed")
        return record

    def _check_workspaces(self) -> None:
        """Refuse a builder workspace another build holds, and an image workspace holding a
        recorded image; an image workspace holding an image no record names is what a build
        killed after its image apply left: destroyed first."""
        if self.builder.resources(self.place.builder_workspace):
            raise ImageError(
                "builder workspace",
                f"'{self.place.builder_workspace}' holds what another build made",
                "wait until that build ends (the reaper destroys a dead build's builder at its hard deadline)",
            )
        if not self.imager.resources(self.place.image_workspace):
            return
        holder = next(
            (r for r in list_records(self.storage, self.config.state_bucket) if isinstance(r, ImageRecord) and self._holds(r)),
            None,
        )
        if holder is not None:
            raise ImageError(
                "image workspace",
                f"'{self.place.image_workspace}' already holds image {holder.id}",
                f"give an empty workspace made from the image stack, or delete that image first (`ephemera image delete {holder.id}`)",
            )
        log.warning(
            "image workspace '%s' holds an image no record names (a dead build's): destroying it", self.place.image_workspace
        )
        self._wait(self.imager, self.imager.destroy(self.place.image_workspace), "image")

    def _holds(self, record: ImageRecord) -> bool:
        return record.workspace == self.place.image_workspace and record.engine_workspace_id == self.place.image_workspace_id

    def _register(self) -> None:
        deadline = now_utc() + timedelta(seconds=self.timeout + DEADLINE_MARGIN)
        event = {BUILD_EVENT: {"place": self.place.to_dict(), "stack": self.stack, "lock_sha256": self.lock}}
        record = RunRecord(
            run_id=self.build_id,
            workspace=self.place.builder_workspace,
            engine=self.builder.name,
            hard_deadline=deadline.isoformat(),
            event=event,
        )
        self.ledger.create(record)

    def _builder_variables(self) -> dict:
        return {
            **self.variables,
            "build_id": self.build_id,
            "workspace": self.place.builder_workspace,
            "lock_sha256": self.lock,
            "requirements_lock": self.lock_text,
        }

    def _apply(self, engine: WorkspaceEngine, workspace: str, variables: dict, what: str) -> dict:
        if what == "builder":
            self.ledger.transition(self.build_id, S.APPLYING, "image build: applying the builder")
        activity = self._wait(engine, engine.apply(workspace, self.build_id, variables, {}), what)
        if what == "builder":
            self.ledger.transition(
                self.build_id,
                S.RUNNING,
                "image build: the builder VM installs the lock, then powers off",
                activities=[activity],
                resources=engine.resources(workspace),
                outputs=engine.outputs(workspace),
            )
        return engine.outputs(workspace)

    def _wait(self, engine: WorkspaceEngine, activity: Activity, what: str) -> Activity:
        while not activity.done:
            self.sleep(self.poll)
            activity = engine.status(activity)
        if activity.state != "COMPLETED":
            raise ImageBuildError(
                f"image build {self.build_id}: the {what}'s {activity.kind} failed:\n{activity.log_tail}",
                BUILD_FIX.format(build=self.build_id),
            )
        return activity

    def _wait_stopped(self, instance: str) -> None:
        region = str(self.variables.get("region") or default_region(self.place))
        waited, status = 0.0, "?"
        while waited <= self.timeout:
            status = instance_status(self.config, self.place, instance, region)
            if status == "stopped":
                return
            if status in NEVER_STOPS:
                break
            self.sleep(self.poll)
            waited += self.poll
        if status in NEVER_STOPS:
            raise ImageBuildError(
                f"image build {self.build_id}: the builder VM {instance} is '{status}', not stopped",
                "see its console log for why it was lost, then build again",
                retryable=True,
            )
        raise ImageBuildError(
            f"image build {self.build_id}: the builder VM {instance} is still '{status}' after {self.timeout:.0f}s",
            "its install did not finish in time (see its console log); raise --timeout or fix the lock, then build again",
            retryable=True,
        )

    def _make_image(self, outputs: dict, instance: str) -> str:
        source = {"source_instance_id": instance}
        if self.place.cloud == "ibm":
            source = {"source_volume_id": _first([outputs.get("boot_volume_id")], "boot_volume_id")}
        variables = {
            "build_id": self.build_id,
            "workspace": self.place.image_workspace,
            "lock_sha256": self.lock,
            **{k: v for k, v in self.variables.items() if k == "region"},
            **source,
        }
        image = self._apply(self.imager, self.place.image_workspace, variables, "image")
        image_id = str(image.get("image_id") or "")
        if not IMAGE_ID_FORMATS[self.place.cloud].match(image_id):
            raise ImageBuildError(
                f"image build {self.build_id}: the image workspace gave no {self.place.cloud} image id ({image_id[:80]!r})",
                "check the image stack's image_id output",
            )
        return image_id

    def _record(self, image_id: str) -> ImageRecord:
        record = ImageRecord(
            id=image_id,
            kind=self.place.cloud,
            stack=self.stack,
            lock_sha256=self.lock,
            built_at=now_iso(),
            python="python3 (the image's /opt/ephemera/image/env)",
            size=0,
            requirements=self.requirements,
            workspace=self.place.image_workspace,
            engine=self.imager.name,
            engine_workspace_id=self.place.image_workspace_id,
            build_id=self.build_id,
        )
        # signed, or no cloud run boots it (bundle.image.cloud_problem); written last: a record names a finished image
        record = dataclasses.replace(record, signature=record_signature(signing_key(self.config), record))
        put_record(self.storage, self.config.state_bucket, record)
        return record

    # teardown ---------------------------------------------------------------------------
    def _fail(self, exc: BaseException) -> None:
        """Destroy what the failed build made (the image workspace's part first) and say why in its record."""
        message = Scrubber(self.config.secret_values()).scrub(getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")
        try:
            if self.imager.resources(self.place.image_workspace):
                self._wait(self.imager, self.imager.destroy(self.place.image_workspace), "image")
        except Exception as err:  # noqa: BLE001 - the builder must still go
            log.error("image build %s: destroying the half-made image failed: %s", self.build_id, err)
        self.ledger.update(self.build_id, lambda r: r.fail(RunError("IMAGE_BUILD_FAILED", message[:2000])))
        state = self.ledger.get(self.build_id).state
        if state in (S.REQUESTED, S.APPLYING):
            self.ledger.transition(self.build_id, S.APPLY_FAILED, "image build failed")
        elif state == S.RUNNING:
            self.ledger.transition(self.build_id, S.FAILED, "image build failed")
        self._destroy_builder("image build failed; its builder is destroyed")

    def _destroy_builder(self, why: str) -> None:
        """Destroy the builder and confirm nothing is left; else DESTROY_FAILED, which the reaper retries."""
        workspace = self.place.builder_workspace
        run = self.ledger.get(self.build_id)
        if run.state == S.RUNNING:
            self.ledger.transition(self.build_id, S.SUCCEEDED, "image recorded")
        self.ledger.transition(self.build_id, S.DESTROYING, why)
        try:
            activity = self._wait(self.builder, self.builder.destroy(workspace), "builder")
            left = self.builder.resources(workspace)
        except Exception as exc:  # noqa: BLE001 - recorded; the reaper retries
            error = RunError("DESTROY_FAILED", getattr(exc, "message", str(exc))[:2000], retryable=True)
            self.ledger.update(self.build_id, lambda r: r.fail(error, S.DESTROY_FAILED))
            log.error("image build %s: destroying the builder failed; the reaper retries: %s", self.build_id, error.message)
            return
        if left:
            error = RunError("DESTROY_INCOMPLETE", f"the builder still holds {', '.join(left)}", retryable=True)
            self.ledger.update(self.build_id, lambda r: r.fail(error, S.DESTROY_FAILED))
            return
        self.ledger.transition(self.build_id, S.DESTROYED, "the builder holds nothing", activities=[activity], resources=[])


def _first(value: object, name: str) -> str:
    if isinstance(value, list) and value and value[0]:
        return str(value[0])
    raise ImageBuildError(f"the builder gave no {name} output", "check the builder stack's outputs")


def cloud_lock(config) -> tuple[str, list[str]]:
    """(the hashed lock, the workload's requirements) a cloud run of ``config`` packs: the same
    inputs as :func:`ephemera.bundle.pack.pack`, so its lock (cached by its inputs) is the run's."""
    reqs = requirements(config)
    vm_reqs = vm_requirements(vm_extras(config), reqs)
    built = source_only_wheels(vm_reqs)
    return compile_lock(vm_reqs + pins(built), wheels=built), reqs


def build_cloud(config, storage: Storage, place: BuildPlace, lock_text: str, requirements: list[str], force=False, **opts):
    """The image of ``lock_text`` for ``config``'s stack: the recorded one (unless ``force``), or
    one built now; (its record, whether it was built now)."""
    try:
        existing = get_record(storage, config.state_bucket, stack_name(config), lock_sha256(lock_text))
    except ImageError:
        existing = None
    if existing is not None and not force:
        return existing, False
    if existing is not None:  # a second image of one lock would leave the first unrecorded, still billed
        raise ImageError(
            "--force",
            f"image {existing.id} of this lock is recorded",
            f"delete it first (`ephemera image delete {existing.id}`), then build again",
        )
    return CloudBuild(config, storage, place, lock_text, requirements, **opts).run(), True


def delete_cloud(config, storage: Storage, record: ImageRecord, place: BuildPlace, sleep=time.sleep, force: bool = False) -> None:
    """Destroy the image's workspace (the image goes with it), confirm it is empty, then remove
    the record. A record naming no workspace (not made by a build) is removed only with ``force``:
    its image is the user's to delete."""
    key = layout.image_key(record.stack, record.lock_sha256)
    if not place.image_workspace:
        if force:
            storage.delete(config.state_bucket, key)
            return
        raise ImageError(
            "workspace",
            f"the record of image {record.id} names no workspace holding it (not made by `ephemera image build`)",
            "delete the image in its cloud yourself, then its record with `ephemera image delete ID --force`",
        )
    engine = engine_for(config, place, "image")
    activity = engine.destroy(place.image_workspace)
    while not activity.done:
        sleep(POLL_SECONDS)
        activity = engine.status(activity)
    left = engine.resources(place.image_workspace)
    if activity.state != "COMPLETED" or left:
        raise ImageBuildError(
            f"image {record.id}: destroying its workspace '{place.image_workspace}' failed ({', '.join(left) or activity.state})",
            "the record is kept; fix the cause and delete again",
            retryable=True,
        )
    storage.delete(config.state_bucket, key)


def place_of_record(record: ImageRecord, stacks: str | None = None) -> BuildPlace:
    """Where a cloud image's workspace is, from its record (``stacks``: the stack folders' parent)."""
    return BuildPlace(
        cloud=record.kind,
        engine=record.engine or "terraform",
        builder_workspace="",
        image_workspace=record.workspace or "",
        stacks=stacks or default_stacks(),
        image_workspace_id=record.engine_workspace_id,
    )
