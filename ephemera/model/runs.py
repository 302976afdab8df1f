"""Run records: states, the transition table, and what a record holds.

The record is the one source of truth for "what exists and why": its state, a
timestamped transition for every state change, the event that caused it, the job it
runs, the engine's activities, the outputs and resource ids Terraform reported, and
the last failure (:class:`RunError`). :mod:`ephemera.model.ledger` stores them.

A failure is recorded in one way only, :meth:`RunRecord.fail`: the error, the state it
leads to, and (for a failed destroy) the destroy attempt it ends. Whoever records a
failure says whether it is ``retryable``; the reaper retries by that flag alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum

from ephemera.errors import EphemeraError, StateConflictError
from ephemera.model.jobs import JobSpec
from ephemera.timeutil import now_iso


class RunState(str, Enum):
    REQUESTED = "REQUESTED"
    APPLYING = "APPLYING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    APPLY_FAILED = "APPLY_FAILED"
    DESTROYING = "DESTROYING"
    DESTROY_FAILED = "DESTROY_FAILED"
    DESTROYED = "DESTROYED"

    def __str__(self) -> str:
        return self.value


S = RunState
# Which states may follow which. A marker may land before apply has been recorded
# as finished (fast local VMs), hence APPLYING -> SUCCEEDED/FAILED. An apply the engine
# refused because the workspace was busy goes back to REQUESTED: the run waits for it.
# A RUNNING run whose spot VM was preempted is re-applied (RUNNING -> APPLYING) for the
# same run id: a replacement VM (ephemera.lifecycle.preemption).
ALLOWED: dict[RunState, set[RunState]] = {
    S.REQUESTED: {S.APPLYING, S.APPLY_FAILED, S.TIMED_OUT, S.DESTROYING},
    S.APPLYING: {S.REQUESTED, S.RUNNING, S.APPLY_FAILED, S.SUCCEEDED, S.FAILED, S.TIMED_OUT},
    S.RUNNING: {S.APPLYING, S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.DESTROYING},
    S.SUCCEEDED: {S.DESTROYING},
    S.FAILED: {S.DESTROYING},
    S.TIMED_OUT: {S.DESTROYING},
    S.APPLY_FAILED: {S.DESTROYING},
    S.DESTROYING: {S.DESTROYED, S.DESTROY_FAILED},
    S.DESTROY_FAILED: {S.DESTROYING},
    S.DESTROYED: set(),
}
# Runs that may still hold cloud resources.
OPEN_STATES = frozenset(set(RunState) - {S.DESTROYED})
# The workload has ended (or never will); only teardown remains.
ENDED_STATES = frozenset({S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.APPLY_FAILED})


@dataclass
class Transition:
    state: str  # the state entered
    at: str  # ISO 8601 UTC time it was entered
    reason: str = ""  # why, in words


@dataclass
class Activity:
    """One engine activity (an apply or a destroy) as the engine reports it."""

    id: str  # the engine's activity id (Schematics activity id, or a local uuid)
    kind: str  # "apply" | "destroy"
    state: str = "RUNNING"  # RUNNING | COMPLETED | FAILED
    started_at: str = field(default_factory=now_iso)
    finished_at: str | None = None
    log_tail: str = ""  # last lines of the engine log (never contains secrets)

    @property
    def done(self) -> bool:
        return self.state in ("COMPLETED", "FAILED")


# codes whose records (written before RunError had ``retryable``) the reaper retried by code
_RETRIED_BEFORE_THE_FLAG = frozenset({"DESTROY_INTERRUPTED", "DESTROY_INCOMPLETE"})


@dataclass
class RunError:
    """The last failure of a run, as the record keeps it."""

    code: str  # stable machine-readable name, e.g. APPLY_FAILED, DESTROY_INCOMPLETE, ENGINE_ERROR
    message: str  # what went wrong and, where known, the fix
    log_tail: str = ""  # last lines of the engine's or the workload's log
    retryable: bool = False  # the same call may succeed later: the reaper retries only these

    @classmethod
    def from_exception(cls, exc: BaseException) -> "RunError":
        """An engine call's exception: an EphemeraError keeps its code and flag; anything
        else is an ENGINE_ERROR that is not retried (nobody said it may pass)."""
        if isinstance(exc, EphemeraError):
            return cls(exc.code, exc.message, getattr(exc, "log_tail", "") or "", bool(exc.retryable))
        return cls("ENGINE_ERROR", f"{type(exc).__name__}: {exc}")

    @classmethod
    def from_dict(cls, data: dict) -> "RunError":
        """A stored error. Records written before this class may lack ``retryable``; of
        those, only our own interrupted or incomplete destroys were retried then."""
        code = str(data.get("code", "ERROR"))
        retryable = data["retryable"] if "retryable" in data else code in _RETRIED_BEFORE_THE_FLAG
        return cls(
            code=code, message=str(data.get("message", "")), log_tail=str(data.get("log_tail") or ""), retryable=bool(retryable)
        )

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> dict:
        """The error without its log tail (for action results)."""
        return {"code": self.code, "message": self.message, "retryable": self.retryable}


@dataclass
class Preemption:
    """One VM of a run lost to a preemption, and what the reaper did about it."""

    worker: int  # the lost VM's worker index
    detected_at: str  # ISO time the reaper saw it
    source: str  # who told: the VM's heartbeat ("aws" | "ibm" | "local") or "engine" (the engine's view of the instance)
    notice_at: str = ""  # ISO time the VM got the cloud's notice ("" when only the engine's view told)
    why: str = ""  # the notice's action (terminate, stop, delete) or the engine's reason
    paid_seconds: float = 0.0  # VM time the lost VM was billed: from its apply to its loss
    outcome: str = ""  # "recovered" (re-applied on spot) | "on_demand" (re-applied with spot = false) | "failed"
    recovery: int = 0  # the recovery number of the re-apply it led to (0: none)

    @classmethod
    def from_dict(cls, data: dict) -> "Preemption":
        """A stored entry; a TypeError for one that is not a JSON object (the ledger reports the record)."""
        if not isinstance(data, dict):
            raise TypeError(f"field 'preemptions' must hold objects, got {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


# what a stored record's fields must be (JSON types): a record of another shape is refused
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    **{name: (str,) for name in ("run_id", "workspace", "engine", "state", "created_at", "hard_deadline")},
    **{name: (dict,) for name in ("event", "outputs", "attempts", "bundle", "vm_seconds", "budget")},
    **{name: (list,) for name in ("transitions", "activities", "resources", "vms", "preemptions", "ladder")},
    **{name: (dict, type(None)) for name in ("job", "error", "result")},
    "version": (int,),
    "recovery": (int,),
    "on_demand": (bool,),
}


@dataclass
class RunRecord:
    run_id: str  # random and unguessable (see ephemera.model.runids); the event maps to it by its claim
    workspace: str  # workspace name (one active run per workspace)
    engine: str  # engine registry name
    state: RunState = RunState.REQUESTED
    created_at: str = field(default_factory=now_iso)
    hard_deadline: str = ""  # ISO time after which the reaper destroys the run
    event: dict = field(default_factory=dict)  # the trigger event, as parsed
    job: JobSpec | None = None  # the job its VMs run (entry, params, output bucket/prefix); None if never requested
    transitions: list[Transition] = field(default_factory=list)
    activities: list[Activity] = field(default_factory=list)
    outputs: dict = field(default_factory=dict)  # Terraform outputs (non-sensitive)
    resources: list[str] = field(default_factory=list)  # every resource id the engine reported
    error: RunError | None = None  # the last failure (see fail())
    result: dict | None = None  # the completion marker's content
    attempts: dict = field(default_factory=dict)  # retry counters, e.g. {"destroy": 2}
    bundle: dict = field(default_factory=dict)  # the run bundle its VMs install (key, sha256, size, wheel, requirements)
    vms: list = field(default_factory=list)  # per VM: worker, boot phases (name -> ISO time), GPU report, python
    vm_seconds: dict = field(default_factory=dict)  # VM time: total, in the workload, outside it (booting, idle)
    budget: dict = field(default_factory=dict)  # its cost cap at apply (ephemera.lifecycle.budget.Admission); {} if none
    preemptions: list[Preemption] = field(default_factory=list)  # each VM lost to a preemption, oldest first
    recovery: int = (
        0  # re-applies after a preemption so far: the stack's ``recovery`` variable (part of its VMs' replace trigger)
    )
    on_demand: bool = False  # re-applied with spot = false (spot.fallback = on_demand, its recoveries spent)
    ladder: list = field(default_factory=list)  # capacity-ladder attempts that failed (ephemera.lifecycle.ladder)
    version: int = 0  # incremented on each save

    def __post_init__(self) -> None:
        self.state = RunState(self.state)
        self.transitions = [t if isinstance(t, Transition) else Transition(**t) for t in self.transitions]
        self.activities = [a if isinstance(a, Activity) else Activity(**a) for a in self.activities]
        if isinstance(self.job, dict):  # as stored: a dict ({} in records of runs never requested)
            self.job = JobSpec.from_dict(self.job) if self.job else None
        if isinstance(self.error, dict):
            self.error = RunError.from_dict(self.error)
        self.preemptions = [p if isinstance(p, Preemption) else Preemption.from_dict(p) for p in self.preemptions]
        if not self.transitions:
            self.transitions.append(Transition(str(self.state), self.created_at, "run requested"))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["state"] = str(self.state)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "RunRecord":
        """The record stored as ``data``; a TypeError naming the field for a value of the
        wrong type (the ledger reports it as RUN_RECORD_INVALID)."""
        if not isinstance(data, dict):
            raise TypeError(f"expected a JSON object, got {type(data).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        for name, types in _FIELD_TYPES.items():
            if name in data and not isinstance(data[name], types):
                raise TypeError(
                    f"field '{name}' must be {' or '.join(t.__name__ for t in types)}, got {type(data[name]).__name__}"
                )
        return cls(**{k: v for k, v in data.items() if k in known})

    def enter(self, state: RunState, reason: str = "") -> None:
        """Move to ``state``, stamping the time; raises StateConflictError if not allowed."""
        state = RunState(state)
        if state not in ALLOWED[self.state]:
            raise StateConflictError(
                f"run '{self.run_id}' cannot go from {self.state} to {state}; "
                f"see `ephemera runs show {self.run_id}` for its state and history"
            )
        self.state = state
        self.transitions.append(Transition(str(state), now_iso(), reason))

    def fail(
        self, error: RunError, state: RunState | None = None, reason: str = "", *, from_states: frozenset[RunState] | None = None
    ) -> None:
        """Record a failure: the error, and the state it leads to (with ``reason``, else
        the error's message). A failed destroy counts as one destroy attempt. With
        ``from_states`` the state is entered only from one of those; the error is
        recorded either way."""
        self.error = error
        if state is None or (from_states is not None and self.state not in from_states):
            return
        if RunState(state) == S.DESTROY_FAILED:
            self.attempts["destroy"] = self.attempts.get("destroy", 0) + 1
        self.enter(state, reason or error.message)

    def entered_at(self, state: RunState) -> str | None:
        for t in reversed(self.transitions):
            if t.state == str(state):
                return t.at
        return None

    def last_activity(self, kind: str) -> Activity | None:
        for act in reversed(self.activities):
            if act.kind == kind:
                return act
        return None
