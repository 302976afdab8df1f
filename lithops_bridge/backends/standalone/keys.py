"""Where standalone jobs live in the storage bucket (the run's state bucket)::

    lithops.jobs/<run_id>/queue/<job_key>.pickle          the job; agents list this prefix
    lithops.jobs/<run_id>/<job_key>/claims/<batch>         a VM's claim (created only if absent)
    lithops.jobs/<run_id>/<job_key>/results/<batch>.pickle the batch's outcomes, one per call
    lithops.jobs/<run_id>/servers/<worker>.json           each VM's task server: alive, processes, pool warm
"""

from __future__ import annotations

from lithops_bridge.constants import JOBS_PREFIX


def queue_prefix(run_id: str) -> str:
    return f"{JOBS_PREFIX}/{run_id}/queue/"


def queue_key(run_id: str, job_key: str) -> str:
    return f"{queue_prefix(run_id)}{job_key}.pickle"


def job_key_of(queue_object_key: str) -> str:
    return queue_object_key.rsplit("/", 1)[-1].removesuffix(".pickle")


def job_prefix(run_id: str, job_key: str) -> str:
    return f"{JOBS_PREFIX}/{run_id}/{job_key}/"


def claim_key(run_id: str, job_key: str, batch: int) -> str:
    return f"{job_prefix(run_id, job_key)}claims/{batch:05d}"


def results_prefix(run_id: str, job_key: str) -> str:
    return f"{job_prefix(run_id, job_key)}results/"


def result_key(run_id: str, job_key: str, batch: int) -> str:
    return f"{results_prefix(run_id, job_key)}{batch:05d}.pickle"


def batch_of(result_object_key: str) -> int:
    return int(result_object_key.rsplit("/", 1)[-1].split(".", 1)[0])


def servers_prefix(run_id: str) -> str:
    return f"{JOBS_PREFIX}/{run_id}/servers/"


def server_key(run_id: str, worker: int | str) -> str:
    return f"{servers_prefix(run_id)}{worker}.json"
