"""The job a run executes: its spec, written by the request into the state bucket and
read by the run's VMs (:mod:`ephemera.vm.workload` runs it). The run record keeps the
same spec (:attr:`ephemera.model.runs.RunRecord.job`).

The stored spec is signed with the run's key (:mod:`ephemera.runkeys`): its JSON holds
``signature``, HMAC-SHA256 over the canonical JSON of every other field. A VM checks
it before it imports the entry or reads the params (:func:`load_job`), so whoever can
write the bucket but lacks the key (another run's VM) cannot change what a run runs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass, field

from ephemera import layout
from ephemera.errors import JobSpecError
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
    event: dict = field(default_factory=dict)  # what fired the run (Event.to_dict() without payload); the workload's ctx.event

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


SIGNATURE = "signature"  # the field of the stored spec that holds its MAC
_DOMAIN = b"ephemera job spec\0"
_FIX = (
    "it was not written by this run's controller, or was changed since: the run is not executed "
    "(whoever can write the state bucket without the run key tried to change what it runs)"
)


def _mac(raw: dict, run_key: str) -> str:
    canonical = json.dumps(
        {k: v for k, v in raw.items() if k != SIGNATURE}, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hmac.new(bytes.fromhex(run_key), _DOMAIN + canonical.encode(), hashlib.sha256).hexdigest()


def signed_json(job: JobSpec, run_key: str) -> bytes:
    """The spec as stored: its JSON with ``signature`` under ``run_key`` (64 hex digits)."""
    raw = job.to_dict()
    raw[SIGNATURE] = _mac(raw, run_key)
    return json.dumps(raw, indent=1, sort_keys=True).encode()


def verified(data: bytes, run_id: str, run_key: str) -> JobSpec:
    """The spec in ``data`` once its signature under ``run_key`` and its run id check out;
    JobSpecError otherwise."""
    where = f"the job spec of run {run_id} ({layout.job_key(run_id)})"
    if not run_key:
        raise JobSpecError(
            f"{where} cannot be checked: this VM's agent config has no run_key; boot the VM "
            "from a boot document that carries it (the controller writes one per run)"
        )
    try:
        raw = json.loads(data)
    except ValueError:
        raise JobSpecError(f"{where} is not JSON; {_FIX}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get(SIGNATURE), str):
        raise JobSpecError(f"{where} is not signed; {_FIX}")
    if not hmac.compare_digest(raw[SIGNATURE], _mac(raw, run_key)):
        raise JobSpecError(f"{where} has a wrong signature; {_FIX}")
    if raw.get("run_id") != run_id:
        raise JobSpecError(f"{where} is signed for another run; {_FIX}")
    return JobSpec.from_dict(raw)


def save_job(storage: Storage, bucket: str, job: JobSpec, run_key: str) -> None:
    """Store the run's spec, signed."""
    storage.put(bucket, layout.job_key(job.run_id), signed_json(job, run_key))


def load_job(storage: Storage, bucket: str, run_id: str, run_key: str) -> JobSpec:
    """The run's spec from the state bucket, checked (JobSpecError if it is not the
    controller's; NoSuchKeyError if there is none)."""
    data = storage.get(bucket, layout.job_key(run_id))
    return verified(data, run_id, run_key)
