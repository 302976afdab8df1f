"""The job a run executes: its spec, written by apply into the state bucket and read
by the run's VMs (:mod:`ephemera.vm.workload` runs it). The run record keeps the same
spec (:attr:`ephemera.model.runs.RunRecord.job`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from ephemera import layout
from ephemera.storage.base import Storage
from ephemera.timeutil import now_utc


@dataclass
class JobSpec:
    run_id: str  # the run this job belongs to
    workspace: str  # workspace name
    entry: str  # "package.module:function" of the workload
    params: dict  # the workload's parameters
    state_bucket: str  # bucket with run records and job specs
    output_bucket: str  # bucket the outputs and marker go to
    output_prefix: str  # the run's own prefix, "<workload.output_prefix>/<run_id>/"
    worker_count: int = 1  # VMs in the run
    hard_deadline: str = ""  # ISO time after which the run is killed
    created_at: str = field(default_factory=lambda: now_utc().isoformat())

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> "JobSpec":
        """The spec from its JSON form; keys this version does not know are ignored."""
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in known})

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> "JobSpec":
        return cls.from_dict(json.loads(data))


def load_job(storage: Storage, bucket: str, run_id: str) -> JobSpec:
    return JobSpec.from_json(storage.get(bucket, layout.job_key(run_id)))
