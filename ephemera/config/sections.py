"""The core's config sections: ``storage``, ``engine``, ``workspace``, ``workload``,
``timeouts``, and the entries of ``triggers`` and ``rules``.

Each is a :class:`~ephemera.sections.Section` model; the field types below carry
their checks (durations ``90s/30m/4h/1d``, bucket names, key prefixes, entry points,
workspace names). ``storage.backend`` and ``engine.backend`` get their allowed values
from the registries when the whole config model is assembled
(:mod:`ephemera.assembly.model`); each backend's and engine's own sections live in its
folder. Alarm schedules are checked after the model (:mod:`ephemera.config.triggers`).
"""

from __future__ import annotations

import copy
import math
import re
from enum import Enum
from typing import Annotated, Any, Optional

from pydantic import BeforeValidator, Field, PrivateAttr, WithJsonSchema

from ephemera.config.alarms import AlarmSchedule

from ephemera.errors import InvalidKeyError
from ephemera.sections import Invalid, Label, Section, secret
from ephemera.storage.keys import BUCKET_PATTERN, MAX_KEY_BYTES, validate_bucket, validate_key



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
DURATION_FIX = "write seconds or e.g. '30m', '4h'"
WORKSPACE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
WORKSPACE_NAME_FIX = "use 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit"
BUNDLE_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_DURATION_SECONDS = 366 * 86400  # no timeout is longer than a year (and dates stay computable)
MAX_WORKERS = 1000  # VMs per run at most, whatever the stack; each stack's own bound is checked by its engine
MAX_PREFIX_BYTES = MAX_KEY_BYTES - 200  # room left in a key for the run id and the output name
LEGACY_WORKLOAD_PACKAGE = "workloads."
MIN_SIGNING_KEY_CHARS = 32  # security.signing_key: at least 128 bits even as hex  # the samples' import path before they moved under ephemera


def is_workspace_name(value: object) -> bool:
    """Workspace names go into run ids, storage keys and Terraform folders."""
    return isinstance(value, str) and bool(WORKSPACE_NAME_RE.match(value))


def _string(value: Any) -> str:
    if not isinstance(value, str):
        shown = "a boolean" if isinstance(value, bool) else f"{type(value).__name__} {value!r}"
        raise Invalid(f"expected a string, got {shown}")
    return value


def duration_seconds(value: Any) -> int:
    """Seconds from an int or a string such as '90s', '30m', '4h', '1d'."""
    if isinstance(value, bool):
        raise Invalid(f"expected a duration, got {value!r}", DURATION_FIX)
    if isinstance(value, (int, float)):
        amount = float(value) if isinstance(value, float) else value
    elif isinstance(value, str):
        text = value.strip().lower()
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        try:
            amount = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else int(text)
        except (ValueError, KeyError, OverflowError):
            raise Invalid(f"'{value}' is not a duration", DURATION_FIX) from None
    else:
        raise Invalid(f"expected a duration, got {type(value).__name__}", DURATION_FIX)
    if isinstance(amount, float) and not math.isfinite(amount):
        raise Invalid(f"{value!r} is not a finite duration", DURATION_FIX)
    if amount > MAX_DURATION_SECONDS:
        raise Invalid(f"{value!r} is longer than {MAX_DURATION_SECONDS // 86400} days", "use a shorter duration, e.g. '4h'")
    seconds = int(amount)
    if seconds <= 0:
        raise Invalid(f"must be positive, got {value!r}", DURATION_FIX)
    return seconds


def _bucket(value: Any) -> str:
    try:
        return validate_bucket(_string(value))
    except InvalidKeyError:  # the storage rule, its fix said once
        raise Invalid(f"bucket name {value!r} is invalid", "use 3-63 lowercase letters, digits, '-' or '.'") from None


def _prefix(value: Any) -> str:
    value = _string(value).strip("/")
    fix = "use a relative path of '/'-separated names such as 'outputs' or 'team/outputs'"
    if len(value.encode("utf-8", "replace")) > MAX_PREFIX_BYTES:
        raise Invalid(f"key prefix is longer than {MAX_PREFIX_BYTES} bytes", fix)
    try:
        value.encode("utf-8")
        if value:
            validate_key(value + "/x")  # every key the run writes under it must be valid
    except (InvalidKeyError, UnicodeEncodeError):
        raise Invalid(f"{value!r} is not a valid key prefix (no '.', '..' or empty segments, backslash or NUL)", fix) from None
    return value


def _entry(value: Any) -> str:
    value = _string(value)
    if value.startswith(LEGACY_WORKLOAD_PACKAGE):
        value = "ephemera." + value  # the bundled samples are ephemera.workloads.* now
    module, _, func = value.partition(":")
    if not module or not func or not all(p.isidentifier() for p in module.split(".")) or not func.isidentifier():
        raise Invalid(f"'{value}' is not 'package.module:function'", "e.g. 'ephemera.workloads.digits_cv:main'")
    return value


def _workspace_name(value: Any) -> str:
    if not is_workspace_name(_string(value)):
        raise Invalid(f"'{value}' is not a valid workspace name", WORKSPACE_NAME_FIX)
    return value


def _name(value: Any) -> str:
    value = _string(value)
    if not (value and all(c.isalnum() or c in "-_." for c in value) and len(value) <= 63):
        raise Invalid(f"'{value}' is not a valid name", "use 1-63 letters, digits, '-', '_' or '.'")
    return value


def _variables(value: Any) -> dict:
    if not isinstance(value, dict):
        raise Invalid(f"expected a mapping, got {type(value).__name__}", "e.g. variables: {worker_count: 2}")
    count = value.get("worker_count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise Invalid(f"expected a positive integer, got {count!r}", "e.g. worker_count: 2", at=("worker_count",))
    if count > MAX_WORKERS:
        raise Invalid(f"{count} VMs is more than {MAX_WORKERS} per run", "use fewer VMs", at=("worker_count",))
    return copy.deepcopy(value)


def _requirements(value: Any) -> list[str] | str:
    if isinstance(value, str) and value.strip():
        return value.strip()  # a requirements file
    if isinstance(value, list) and all(isinstance(r, str) and r.strip() and not r.strip().startswith("-") for r in value):
        return [r.strip() for r in value]
    raise Invalid("expected a list of requirements or the path of a requirements file",
                  "e.g. requirements: ['scikit-learn>=1.3'] or requirements: requirements.txt")


def _bundle_hash(value: Any) -> str:
    value = _string(value).strip().lower()
    if not BUNDLE_HASH_RE.match(value):
        raise Invalid(f"'{value}' is not a bundle's SHA-256", "use the 64 hex digits `ephemera bundle publish` prints")
    return value


def _patterns(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(p, str) and p.strip() for p in value):
        raise Invalid("expected a list of glob patterns", "e.g. ignore: ['data/', '*.ckpt']")
    return [p.strip() for p in value]


def _signing_key(value: Any) -> str:
    value = _string(value).strip()
    if len(value) < MIN_SIGNING_KEY_CHARS:
        raise Invalid(f"is shorter than {MIN_SIGNING_KEY_CHARS} characters",
                      "generate one with `python -c 'import secrets; print(secrets.token_hex(32))'`")
    return value


def _suffixes(value: Any) -> list[str]:
    suffixes = [value] if isinstance(value, str) else value
    if not isinstance(suffixes, list) or not all(isinstance(s, str) and s for s in suffixes):
        raise Invalid("every suffix must be a non-empty string", "a suffix or a list of suffixes, e.g. ['_SUCCESS.json']")
    return list(suffixes)


_STRING = {"type": "string"}
Duration = Annotated[int, Label("duration: seconds, 90s, 30m, 4h, 1d"), BeforeValidator(duration_seconds), WithJsonSchema(
    {"anyOf": [{"type": "integer", "exclusiveMinimum": 0}, {"type": "string", "pattern": r"^\s*[0-9.]+\s*[smhdSMHD]?\s*$"}]})]
BucketName = Annotated[str, Label("bucket name"), BeforeValidator(_bucket), WithJsonSchema(
    {"type": "string", "pattern": BUCKET_PATTERN})]
KeyPrefix = Annotated[str, Label("key prefix"), BeforeValidator(_prefix), WithJsonSchema(_STRING)]
EntryPoint = Annotated[str, Label("package.module:function"), BeforeValidator(_entry), WithJsonSchema({"type": "string", "pattern": r"^[\w.]+:\w+$"})]
WorkspaceName = Annotated[str, Label("workspace name"), BeforeValidator(_workspace_name), WithJsonSchema(
    {"type": "string", "pattern": WORKSPACE_NAME_RE.pattern})]
Name = Annotated[str, Label("name"), BeforeValidator(_name), WithJsonSchema({"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,63}$"})]
Variables = Annotated[dict, Label("mapping"), BeforeValidator(_variables), WithJsonSchema({"type": "object"})]
Suffixes = Annotated[list, Label("string or list of strings"), BeforeValidator(_suffixes), WithJsonSchema(
    {"anyOf": [{"type": "string", "minLength": 1}, {"type": "array", "items": {"type": "string", "minLength": 1}}]})]
Requirements = Annotated[Any, Label("list of requirements, or a requirements file"), BeforeValidator(_requirements), WithJsonSchema(
    {"anyOf": [{"type": "string", "minLength": 1}, {"type": "array", "items": {"type": "string", "minLength": 1}}]})]
Patterns = Annotated[list, Label("list of glob patterns"), BeforeValidator(_patterns), WithJsonSchema(
    {"type": "array", "items": {"type": "string", "minLength": 1}})]
BundleHash = Annotated[str, Label("SHA-256"), BeforeValidator(_bundle_hash), WithJsonSchema(
    {"type": "string", "pattern": BUNDLE_HASH_RE.pattern})]
SigningKey = Annotated[str, Label("string, 32+ characters"), BeforeValidator(_signing_key), WithJsonSchema(
    {"type": "string", "minLength": MIN_SIGNING_KEY_CHARS})]
TriggerPrefix = Annotated[str, Label("key prefix"), BeforeValidator(lambda v: _string(v).lstrip("/")), WithJsonSchema(_STRING)]


class StorageSection(Section):
    """Where Ephemera keeps its state. ``backend`` names a storage backend's folder."""

    backend: str = Field("localhost", description="the storage backend: its settings are the section of that name")
    bucket: BucketName = Field("ephemera", description="the bucket that holds run records and job specs (and, by default, outputs)")


class EngineSection(Section):
    """What applies and destroys workspaces. ``backend`` names an engine's folder."""

    backend: str = Field("terraform", description="the workspace engine: its settings are the section of that name")


class WorkspaceSection(Section):
    """The Terraform workspace a run applies; one open run per workspace at a time."""

    name: WorkspaceName = Field("default", description="the workspace name, part of every run id")
    stack: str = Field("local", description="'local', 'ibm-vpc-gpu' or a folder with .tf files")
    variables: Variables = Field(default_factory=dict, description="Terraform variables of the stack, e.g. {worker_count: 2}")


class WorkloadSection(Section):
    """What the VMs run, and where it writes."""

    entry: EntryPoint = Field("ephemera.workloads.digits_cv:main", description="the workload function, 'package.module:function' (a module of workload.source, when set)")
    source: Optional[str] = Field(None, description="a folder or file with the workload's code, shipped in the run bundle; relative to the config file")
    requirements: Requirements = Field(default_factory=list, description="what the workload needs on the VMs: requirements, or a requirements file (relative to the config file)")
    ignore: Patterns = Field(default_factory=list, description="glob patterns of workload.source files to leave out (with .git, __pycache__, .venv, *.pyc)")
    bundle: Optional[BundleHash] = Field(None, description="a published run bundle's SHA-256 (ephemera bundle publish; ephemera deploy sets it): VMs install it instead of one packed at apply, which a deployed action cannot do")
    params: dict = Field(default_factory=dict, description="parameters handed to the workload (ctx.params)")
    remote_params: list[str] = Field(default_factory=list, description="the params keys a remote request to a deployed function (ephemera invoke --url) may set; it may set no other")
    output_bucket: Optional[BucketName] = Field(None, description="where outputs and the marker go; defaults to storage.bucket")
    output_prefix: KeyPrefix = Field("outputs", description="outputs go to <output_bucket>/<output_prefix>/<run_id>/")


class TimeoutsSection(Section):
    """Durations: seconds, or '90s', '30m', '4h', '1d'."""

    hard: Duration = Field(4 * 3600, description="no VM lives longer than this after apply starts")
    soft: Duration = Field(600, description="a finished run whose destroy has not started by then is reaped")
    apply: Duration = Field(1800, description="an apply not finished by then is failed and destroyed")
    action: Duration = Field(300, description="an action invocation is killed after this")
    boot: Duration = Field(1200, description="a run's VMs that have not all reported by then (after apply) fail it, and it is destroyed")
    heartbeat: Duration = Field(120, description="a running run whose workload VM (or every VM) has sent no heartbeat for this long is failed and destroyed")


class SecuritySection(Section):
    """Keys that authenticate what a run's VMs execute (see ephemera.runkeys)."""

    signing_key: Optional[SigningKey] = secret("the controller's key (e.g. 64 random hex digits) from which each run's key is derived; "
                                               "default: the file signing.key in the Ephemera home (created on first use); "
                                               "a deploy binds it")


class TriggerEntry(Section):
    """One entry of ``triggers``: an alarm or a watch on bucket writes."""

    name: Name = Field(description="the trigger's name, referred to by rules", examples=["nightly"])
    kind: TriggerKind = Field(description="what fires it: an alarm (cron or once) or a write to a bucket", examples=["alarm"],
                              strict=False)  # strict would take only enum members; lax takes exactly their values
    cron: Optional[str] = Field(None, description="alarm: 'min hour day month weekday' (months 1-12, weekdays 0-7 with 0 and 7 Sunday), or 6 fields with seconds last; the deploy translates it per platform")
    once: Optional[str] = Field(None, description="alarm: an ISO 8601 time at which the alarm fires once; without an offset, read in timezone")
    timezone: str = Field("UTC", description="alarm: the IANA zone the cron fields (and dates without an offset) are read in")
    start_date: Optional[str] = Field(None, description="alarm: no fire before this ISO 8601 time; without an offset, read in timezone")
    stop_date: Optional[str] = Field(None, description="alarm: no fire after this ISO 8601 time; without an offset, read in timezone")
    bucket: Optional[BucketName] = Field(None, description="object_write: the watched bucket; defaults to storage.bucket")
    prefix: TriggerPrefix = Field("", description="object_write: only keys under this prefix")
    suffix: Suffixes = Field(default_factory=list, description="object_write: a suffix or a list of suffixes, e.g. ['_SUCCESS.json']")
    payload: dict = Field(default_factory=dict, description="parameters the trigger adds to the action's event (over the rule's params), e.g. {params: {folds: 3}} for apply")
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
    action: ActionName = Field(description="the action the trigger invokes", examples=["apply"],
                               strict=False)  # strict would take only enum members; lax takes exactly their values
    params: dict = Field(default_factory=dict, description="parameters bound to the action, under the event's, on every platform")

    def to_dict(self) -> dict[str, Any]:
        """The entry as plain values (its ``name`` completed by validation)."""
        return self.model_dump(mode="json")


CORE_SECTIONS: dict[str, type[Section]] = {
    "workspace": WorkspaceSection,
    "workload": WorkloadSection,
    "timeouts": TimeoutsSection,
    "security": SecuritySection,
}
