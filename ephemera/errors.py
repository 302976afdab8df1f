"""The exception hierarchy: every error names what is wrong and how to fix it.

Actions turn these into ``{"error": {"code", "message"}}`` results; nothing else in
Ephemera raises a bare ``Exception``. ``retryable`` says whether the same call may
succeed later (a busy workspace, a throttled API); only those are retried.
"""

from __future__ import annotations

import copyreg
from typing import Any


class EphemeraError(Exception):
    """Base class. ``code`` is the stable machine-readable name used in results."""

    code = "EPHEMERA_ERROR"
    retryable = False

    def __init__(self, message: str, *, retryable: bool | None = None):
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle without calling __init__ (a subclass's signature differs from ``args``):
        # rebuild with BaseException.__new__, then restore args and attributes. Every
        # error crosses process boundaries this way (the bridge ships them to the client).
        newobj = copyreg.__newobj__  # type: ignore[attr-defined]  # CPython's pickle helper; typeshed omits it
        return newobj, (type(self),), {**self.__dict__, "args": self.args}


class FieldError(EphemeraError):
    """A named input field is missing or malformed: ``field`` is its dotted path."""

    label = "field"  # how the message names the field's kind

    def __init__(self, field: str, problem: str, fix: str = ""):
        self.field = field
        msg = f"{self.label} '{field}': {problem}"
        if fix:
            msg += f"; {fix}"
        super().__init__(msg)


class ConfigError(FieldError):
    """A config value is missing, unknown or malformed."""

    code = "CONFIG_INVALID"
    label = "config key"


class ConfigFileError(ConfigError):
    """The config file cannot be read or parsed: ``field`` is its path."""

    label = "config file"


class ConfigErrors(ConfigError):
    """Several problems found at once (a person fixes them in one pass, not one per try):
    ``problems`` holds each one's (field, message); ``field`` is the first one's."""

    def __init__(self, errors: list[ConfigError]):
        self.problems = [(e.field, e.message) for e in errors]  # plain data: the error pickles as it is
        self.field = self.problems[0][0]
        EphemeraError.__init__(self, f"{len(self.problems)} problems:\n" + "\n".join(f"  - {m}" for _, m in self.problems))

    @staticmethod
    def of(errors: list[ConfigError]) -> ConfigError:
        """The one error of a list of one, else all of them as one :class:`ConfigErrors`."""
        return errors[0] if len(errors) == 1 else ConfigErrors(errors)


class StackSpecError(ConfigError):
    """A stack's ``stack.toml`` is missing, malformed, or disagrees with its ``.tf`` files."""

    code = "STACK_SPEC_INVALID"
    label = "stack spec"


class ImageError(FieldError):
    """A prepared image cannot be built, found or trusted: ``field`` names what is wrong
    (the config key, or the image record's field)."""

    code = "IMAGE_INVALID"
    label = "image"


class ImageBuildError(EphemeraError):
    """A cloud image build failed part-way (an apply, the builder VM's power-off, the image):
    nothing was recorded and the builder was destroyed (or left to the reaper, named)."""

    code = "IMAGE_BUILD_FAILED"

    def __init__(self, message: str, fix: str, *, retryable: bool = False):
        self.fix = fix
        super().__init__(f"{message}; {fix}", retryable=retryable)


class ParamError(FieldError):
    """An action parameter is missing or malformed."""

    code = "PARAM_INVALID"
    label = "parameter"


class EventError(FieldError):
    """An event payload matches no known delivery format, or a field of it is malformed."""

    code = "EVENT_INVALID"
    label = "event field"


class BootDocumentError(FieldError):
    """A VM's boot document lacks a field the controller writes, or has it mistyped."""

    code = "BOOT_DOCUMENT_INVALID"
    label = "boot document field"


class AgentConfigError(FieldError):
    """A VM's agent config (``agent.json``) lacks a field, or has it mistyped."""

    code = "AGENT_CONFIG_INVALID"
    label = "agent config field"


class AuthError(EphemeraError):
    """A request to a deployed entry point did not prove it comes from the owner's
    deployment. Its message says nothing about why (no hint for a guesser)."""

    code = "UNAUTHORIZED"

    def __init__(self) -> None:
        super().__init__("authentication required")


class ConfigUnavailableError(EphemeraError):
    """A deployed entry point could not fetch its bound config (the secret store was
    unreachable or throttled); a later delivery may succeed."""

    code = "CONFIG_UNAVAILABLE"
    retryable = True


class StorageError(EphemeraError):
    """A storage call failed."""

    code = "STORAGE_ERROR"


class InvalidKeyError(StorageError):
    """A bucket name or object key is not acceptable."""

    code = "STORAGE_KEY_INVALID"


class NoSuchKeyError(StorageError):
    """The object does not exist."""

    code = "STORAGE_NO_SUCH_KEY"

    def __init__(self, bucket: str, key: str):
        self.bucket = bucket
        self.key = key
        super().__init__(f"no object '{key}' in bucket '{bucket}'")


class NoSuchBucketError(StorageError):
    """The bucket does not exist."""

    code = "STORAGE_NO_SUCH_BUCKET"

    def __init__(self, bucket: str):
        self.bucket = bucket
        super().__init__(f"bucket '{bucket}' does not exist; create it first or fix 'storage.bucket'")


class EngineError(EphemeraError):
    """A workspace engine call failed. ``log_tail`` carries the engine's last log lines."""

    code = "ENGINE_ERROR"

    def __init__(self, message: str, *, retryable: bool | None = None, log_tail: str = ""):
        super().__init__(message, retryable=retryable)
        self.log_tail = log_tail


class WorkspaceBusyError(EngineError):
    """The workspace is locked by another activity: try later, this is not a failure."""

    code = "WORKSPACE_BUSY"
    retryable = True


class BudgetExceededError(EphemeraError):
    """A run would take spend past a cap of the ``budget`` section, or its cost reached
    ``budget.max_cost_per_run``: the apply is refused, or the run ended."""

    code = "BUDGET_EXCEEDED"


class RunNotFoundError(EphemeraError):
    code = "RUN_NOT_FOUND"

    def __init__(self, run_id: str):
        self.run_id = run_id
        super().__init__(f"no run '{run_id}' in the ledger; `ephemera runs` lists the known runs")


class PreemptedError(EphemeraError):
    """A run's spot VMs were preempted more times than it may recover (``spot.max_recoveries``),
    with no fallback, or with no time left before its hard deadline to boot a replacement."""

    code = "PREEMPTED"
    fix = 'raise spot.max_recoveries, or set spot.fallback = "on_demand" to finish on on-demand capacity'

    def __init__(self, problem: str):
        self.problem = problem
        super().__init__(f"{problem}; {self.fix}")


class StateConflictError(EphemeraError):
    """A run record changed underneath us, or a transition is not allowed from its state."""

    code = "STATE_CONFLICT"


class JobSpecError(EphemeraError):
    """A run's job spec is missing its signature, or the signature does not check out:
    it was not written by the run's controller (or changed since), so it is not run."""

    code = "JOB_SPEC_UNTRUSTED"


class RunRecordInvalidError(EphemeraError):
    """A stored run record is not one Ephemera wrote: not JSON, not an object, a field of
    the wrong type, or the record of another run (torn, or planted by someone with write
    access to the state bucket)."""

    code = "RUN_RECORD_INVALID"

    def __init__(self, key: str, problem: str):
        self.key = key
        super().__init__(
            f"run record '{key}' is invalid: {problem}; inspect that object (torn, or written by "
            "someone else?) and delete it, or restore it from a backup"
        )


class RunPrefixNotEmptyError(EphemeraError):
    """Objects exist under a run's prefixes before the run is requested. Run ids are
    random, so nothing can be there by accident: someone who can write the bucket put
    them there for the run to use (e.g. a pickle in its job queue)."""

    code = "RUN_PREFIX_NOT_EMPTY"

    def __init__(self, run_id: str, found: list[str]):
        self.run_id = run_id
        self.found = list(found)
        shown = ", ".join(repr(k) for k in self.found[:5]) + (" ..." if len(self.found) > 5 else "")
        super().__init__(
            f"run '{run_id}' was refused: objects already exist under its prefixes before it was "
            f"requested ({shown}); nobody could know this id, so they were planted by someone with "
            "write access to the bucket: review who can write it, inspect and delete those objects, "
            "then deliver the event again"
        )
