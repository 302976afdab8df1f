"""The core's config sections: ``storage``, ``engine``, ``workspace``, ``workload``,
``timeouts``, and the entries of ``triggers`` and ``rules``.

Each is a :class:`~ephemera.sections.Section` model; its field types carry their
checks (:mod:`ephemera.config.fields`: durations ``90s/30m/4h/1d``, bucket names, key
prefixes, entry points, workspace names). ``storage.backend`` and ``engine.backend`` get their allowed values
from the registries when the whole config model is assembled
(:mod:`ephemera.assembly.model`); each backend's and engine's own sections live in its
folder. Alarm schedules are checked after the model (:mod:`ephemera.config.triggers`).
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Optional

from pydantic import Field, PrivateAttr

from ephemera.config.alarms import AlarmSchedule
from ephemera.config.fields import (
    BucketName,
    BundleHash,
    Duration,
    EntryPoint,
    KeyPrefix,
    Name,
    Patterns,
    Requirements,
    SigningKey,
    Suffixes,
    TriggerPrefix,
    Fallback,
    Variables,
    WorkspaceName,
)
from ephemera.config.spot import SpotSection
from ephemera.sections import Section, secret


class ActionName(str, Enum):
    """The actions a rule may invoke (each a module of ``ephemera.actions``)."""

    APPLY = "apply"
    DESTROY = "destroy"
    REAP = "reap"
    STATUS = "status"

    def __str__(self) -> str:
        return self.value


class TriggerKind(str, Enum):
    """What fires a trigger."""

    ALARM = "alarm"  # a cron schedule or a one-off time
    OBJECT_WRITE = "object_write"  # a write to a bucket (under a prefix, with a suffix)

    def __str__(self) -> str:
        return self.value


ACTIONS: tuple[str, ...] = tuple(a.value for a in ActionName)
TRIGGER_KINDS: tuple[str, ...] = tuple(k.value for k in TriggerKind)


class StorageSection(Section):
    """Where Ephemera keeps its state. ``backend`` names a storage backend's folder."""

    backend: str = Field("localhost", description="the storage backend: its settings are the section of that name")
    bucket: BucketName = Field(
        "ephemera", description="the bucket that holds run records and job specs (and, by default, outputs)"
    )


class EngineSection(Section):
    """What applies and destroys workspaces. ``backend`` names an engine's folder."""

    backend: str = Field("terraform", description="the workspace engine: its settings are the section of that name")


class WorkspaceSection(Section):
    """The Terraform workspace a run applies; one open run per workspace at a time."""

    name: WorkspaceName = Field("default", description="the workspace name, part of every run id")
    stack: str = Field("local", description="'local', 'ibm-vpc-gpu' or a folder with .tf files")
    variables: Variables = Field(default_factory=dict, description="Terraform variables of the stack, e.g. {worker_count: 2}")
    fallback: Fallback = Field(
        default_factory=list,
        description="the capacity ladder: variable overrides tried in order when an apply fails for want of capacity or quota, e.g. [{zone: us-south-2}, {spot: false}]",
    )


class WorkloadSection(Section):
    """What the VMs run, and where it writes."""

    entry: EntryPoint = Field(
        "ephemera.workloads.digits_cv:main",
        description="the workload function, 'package.module:function' (a module of workload.source, when set)",
    )
    source: Optional[str] = Field(
        None, description="a folder or file with the workload's code, shipped in the run bundle; relative to the config file"
    )
    requirements: Requirements = Field(
        default_factory=list,
        description="what the workload needs on the VMs: requirements, or a requirements file (relative to the config file)",
    )
    ignore: Patterns = Field(
        default_factory=list,
        description="glob patterns of workload.source files to leave out (with .git, __pycache__, .venv, *.pyc)",
    )
    bundle: Optional[BundleHash] = Field(
        None,
        description="a published run bundle's SHA-256 (ephemera bundle publish; ephemera deploy sets it): VMs install it instead of one packed at apply, which a deployed action cannot do",
    )
    params: dict = Field(default_factory=dict, description="parameters handed to the workload (ctx.params)")
    remote_params: list[str] = Field(
        default_factory=list,
        description="the params keys a remote request to a deployed function (ephemera invoke --url) may set; it may set no other",
    )
    output_bucket: Optional[BucketName] = Field(None, description="where outputs and the marker go; defaults to storage.bucket")
    output_prefix: KeyPrefix = Field("outputs", description="outputs go to <output_bucket>/<output_prefix>/<run_id>/")


class TimeoutsSection(Section):
    """Durations: seconds, or '90s', '30m', '4h', '1d'."""

    hard: Duration = Field(4 * 3600, description="no VM lives longer than this after apply starts")
    soft: Duration = Field(600, description="a finished run whose destroy has not started by then is reaped")
    apply: Duration = Field(1800, description="an apply not finished by then is failed and destroyed")
    action: Duration = Field(300, description="an action invocation is killed after this")
    boot: Duration = Field(
        1200, description="a run's VMs that have not all reported by then (after apply) fail it, and it is destroyed"
    )
    heartbeat: Duration = Field(
        120,
        description="a running run whose workload VM (or every VM) has sent no heartbeat for this long is failed and destroyed",
    )


class SecuritySection(Section):
    """Keys that authenticate what a run's VMs execute (see ephemera.runkeys)."""

    signing_key: Optional[SigningKey] = secret(
        "the controller's key (e.g. 64 random hex digits) from which each run's key is derived; "
        "default: the file signing.key in the Ephemera home (created on first use); "
        "a deploy binds it"
    )


class TriggerEntry(Section):
    """One entry of ``triggers``: an alarm or a watch on bucket writes."""

    name: Name = Field(description="the trigger's name, referred to by rules", examples=["nightly"])
    kind: TriggerKind = Field(
        description="what fires it: an alarm (cron or once) or a write to a bucket", examples=["alarm"], strict=False
    )  # strict would take only enum members; lax takes exactly their values
    cron: Optional[str] = Field(
        None,
        description="alarm: 'min hour day month weekday' (months 1-12, weekdays 0-7 with 0 and 7 Sunday), or 6 fields with seconds last; the deploy translates it per platform",
    )
    once: Optional[str] = Field(
        None, description="alarm: an ISO 8601 time at which the alarm fires once; without an offset, read in timezone"
    )
    timezone: str = Field("UTC", description="alarm: the IANA zone the cron fields (and dates without an offset) are read in")
    start_date: Optional[str] = Field(
        None, description="alarm: no fire before this ISO 8601 time; without an offset, read in timezone"
    )
    stop_date: Optional[str] = Field(
        None, description="alarm: no fire after this ISO 8601 time; without an offset, read in timezone"
    )
    bucket: Optional[BucketName] = Field(None, description="object_write: the watched bucket; defaults to storage.bucket")
    prefix: TriggerPrefix = Field("", description="object_write: only keys under this prefix")
    suffix: Suffixes = Field(
        default_factory=list, description="object_write: a suffix or a list of suffixes, e.g. ['_SUCCESS.json']"
    )
    payload: dict = Field(
        default_factory=dict,
        description="parameters the trigger adds to the action's event (over the rule's params), e.g. {params: {folds: 3}} for apply",
    )
    _schedule: Optional[AlarmSchedule] = PrivateAttr(None)  # an alarm's parsed schedule, set when the config is validated

    @property
    def schedule(self) -> AlarmSchedule | None:
        """An alarm's parsed schedule (None for an object_write trigger)."""
        return self._schedule

    def set_schedule(self, schedule: AlarmSchedule) -> None:
        self._schedule = schedule

    def to_dict(self) -> dict[str, Any]:
        """The entry as plain values with its parsed ``schedule`` (what the scheduler and the deploy plans take)."""
        return {**self.model_dump(mode="json"), "schedule": self._schedule}


class RuleEntry(Section):
    """One entry of ``rules``: a trigger bound to an action."""

    name: Optional[Name] = Field(None, description="defaults to '<trigger>-<action>'")
    trigger: str = Field(description="the name of a trigger", examples=["nightly"])
    action: ActionName = Field(
        description="the action the trigger invokes", examples=["apply"], strict=False
    )  # strict would take only enum members; lax takes exactly their values
    params: dict = Field(default_factory=dict, description="parameters bound to the action, under the event's, on every platform")

    def to_dict(self) -> dict[str, Any]:
        """The entry as plain values (its ``name`` completed by validation)."""
        return self.model_dump(mode="json")


CORE_SECTIONS: dict[str, type[Section]] = {
    "workspace": WorkspaceSection,
    "workload": WorkloadSection,
    "timeouts": TimeoutsSection,
    "security": SecuritySection,
    "spot": SpotSection,
}
