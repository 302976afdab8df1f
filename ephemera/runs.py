"""The runs ledger: one JSON record per run in the state bucket.

The record is the one source of truth for "what exists and why": its state, a
timestamped transition for every state change, the event that caused it, the job it
runs, the engine's activities, the outputs and resource ids Terraform reported, and
any error with a log tail. Updates go through :meth:`Ledger.update`, which holds a
per-run lock so that two actions never interleave a read-modify-write.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Callable, Iterator

from ephemera import layout
from ephemera.errors import NoSuchBucketError, NoSuchKeyError, RunNotFoundError, StateConflictError
from ephemera.locks import StorageLock
from ephemera.storage.base import Storage

log = logging.getLogger(__name__)


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
# as finished (fast local VMs), hence APPLYING -> SUCCEEDED/FAILED.
ALLOWED: dict[RunState, set[RunState]] = {
    S.REQUESTED: {S.APPLYING, S.APPLY_FAILED, S.TIMED_OUT, S.DESTROYING},
    S.APPLYING: {S.RUNNING, S.APPLY_FAILED, S.SUCCEEDED, S.FAILED, S.TIMED_OUT},
    S.RUNNING: {S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.DESTROYING},
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


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


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


@dataclass
class RunRecord:
    run_id: str  # unique, derived from the triggering event (see ephemera.runids)
    workspace: str  # workspace name (one active run per workspace)
    engine: str  # engine registry name
    state: RunState = RunState.REQUESTED
    created_at: str = field(default_factory=now_iso)
    hard_deadline: str = ""  # ISO time after which the reaper destroys the run
    event: dict = field(default_factory=dict)  # the trigger event, as parsed
    job: dict = field(default_factory=dict)  # workload entry, params, output bucket/prefix
    transitions: list[Transition] = field(default_factory=list)
    activities: list[Activity] = field(default_factory=list)
    outputs: dict = field(default_factory=dict)  # Terraform outputs (non-sensitive)
    resources: list[str] = field(default_factory=list)  # every resource id the engine reported
    error: dict | None = None  # {"code", "message", "log_tail"} of the last failure
    result: dict | None = None  # the completion marker's content
    attempts: dict = field(default_factory=dict)  # retry counters, e.g. {"destroy": 2}
    version: int = 0  # incremented on each save

    def __post_init__(self) -> None:
        self.state = RunState(self.state)
        self.transitions = [t if isinstance(t, Transition) else Transition(**t) for t in self.transitions]
        self.activities = [a if isinstance(a, Activity) else Activity(**a) for a in self.activities]
        if not self.transitions:
            self.transitions.append(Transition(str(self.state), self.created_at, "run requested"))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["state"] = str(self.state)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "RunRecord":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def enter(self, state: RunState, reason: str = "") -> None:
        """Move to ``state``, stamping the time; raises StateConflictError if not allowed."""
        state = RunState(state)
        if state not in ALLOWED[self.state]:
            raise StateConflictError(f"run '{self.run_id}' cannot go from {self.state} to {state}; "
                                     f"see `ephemera runs show {self.run_id}` for its state and history")
        self.state = state
        self.transitions.append(Transition(str(state), now_iso(), reason))

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


class Ledger:
    """Run records in the state bucket."""

    def __init__(self, storage: Storage, bucket: str, lock_ttl: float = 120.0):
        self.storage = storage
        self.bucket = bucket
        self.lock_ttl = lock_ttl

    def create(self, record: RunRecord) -> bool:
        """Store a new record; False if a record with that run id already exists."""
        record.version = 1
        data = json.dumps(record.to_dict(), indent=1).encode()
        return self.storage.put_if_absent(self.bucket, layout.run_key(record.run_id), data)

    def get(self, run_id: str) -> RunRecord:
        try:
            return RunRecord.from_dict(json.loads(self.storage.get(self.bucket, layout.run_key(run_id))))
        except NoSuchKeyError:
            raise RunNotFoundError(run_id) from None

    def exists(self, run_id: str) -> bool:
        try:
            self.storage.head(self.bucket, layout.run_key(run_id))
            return True
        except NoSuchKeyError:
            return False

    def save(self, record: RunRecord) -> RunRecord:
        record.version += 1
        self.storage.put(self.bucket, layout.run_key(record.run_id), json.dumps(record.to_dict(), indent=1).encode())
        return record

    def update(self, run_id: str, change: Callable[[RunRecord], None]) -> RunRecord:
        """Read, apply ``change`` and save, under the run's lock."""
        with StorageLock(self.storage, self.bucket, f"run-{run_id}", ttl=self.lock_ttl):
            record = self.get(run_id)
            change(record)
            return self.save(record)

    def transition(self, run_id: str, state: RunState, reason: str = "", **fields) -> RunRecord:
        """Move a run to ``state`` (and set any record fields) under its lock."""

        def change(record: RunRecord) -> None:
            record.enter(state, reason)
            for name, value in fields.items():
                setattr(record, name, value)

        return self.update(run_id, change)

    def list(self) -> Iterator[RunRecord]:
        """Every run, oldest first. A record that is not valid JSON or not a valid run
        record is skipped with a warning naming its key."""
        records = []
        try:
            infos = list(self.storage.list(self.bucket, layout.RUNS))
        except NoSuchBucketError:  # a missing bucket means no runs yet
            return iter(())
        for info in infos:
            if not info.key.endswith(".json"):
                continue
            try:
                data = self.storage.get(self.bucket, info.key)
            except NoSuchKeyError:  # deleted since the listing
                continue
            try:
                records.append(RunRecord.from_dict(json.loads(data)))
            except (ValueError, TypeError, AttributeError) as exc:
                log.warning("skipping run record '%s' in bucket '%s': it is not a valid run record (%s: %s); "
                            "inspect or delete that object", info.key, self.bucket, type(exc).__name__, exc)
        return iter(sorted(records, key=lambda r: (r.created_at, r.run_id)))

    def open_runs(self, workspace: str | None = None) -> list[RunRecord]:
        return [r for r in self.list() if r.state in OPEN_STATES and (workspace is None or r.workspace == workspace)]
