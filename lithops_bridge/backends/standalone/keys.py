"""Where standalone jobs live in the storage bucket (the run's state bucket)::

    lithops.jobs/<run_id>/queue/<job_key>.pickle             the job; agents list this prefix
    lithops.jobs/<run_id>/<job_key>/<batch>.<slot>           a batch's slots (created only if absent)
    lithops.jobs/<run_id>/servers/<worker>.json              each VM's task server: alive, processes, pool warm

A batch's slots are numbered from 0 (``<batch>`` and ``<slot>`` zero-padded to 5 and
2 digits; one folder per job, not per batch: on localhost storage every folder is a
``mkdir`` and an ``rmdir``). Slot 0 is the first claim. Slot ``s + 1`` decides what became of the claim
in slot ``s``: the claimer's results (the batch is done), a new claim by another VM
(the claimer died; its results, should they come, are ignored), or the client's
abandon (no VM is left to run it, or every attempt was used). See
:mod:`lithops_bridge.backends.standalone.slots`.
"""

from __future__ import annotations

import re

from lithops_bridge.constants import JOBS_PREFIX

JOB_KIND = "job"  # the seal's kind of a queue object
_SLOT = re.compile(r"^(\d+)\.(\d+)$")


def queue_prefix(run_id: str) -> str:
    return f"{JOBS_PREFIX}/{run_id}/queue/"


def queue_key(run_id: str, job_key: str) -> str:
    return f"{queue_prefix(run_id)}{job_key}.pickle"


def job_key_of(queue_object_key: str) -> str:
    return queue_object_key.rsplit("/", 1)[-1].removesuffix(".pickle")


def job_prefix(run_id: str, job_key: str) -> str:
    return f"{JOBS_PREFIX}/{run_id}/{job_key}/"


def batches_prefix(run_id: str, job_key: str) -> str:
    """Where a job's slots are: its folder holds nothing else."""
    return job_prefix(run_id, job_key)


def slot_key(run_id: str, job_key: str, batch: int, slot: int) -> str:
    return f"{batches_prefix(run_id, job_key)}{batch:05d}.{slot:02d}"


def slot_of(run_id: str, job_key: str, key: str) -> tuple[int, int] | None:
    """(batch, slot) of a slot object's key; None for any other object under the prefix."""
    m = _SLOT.match(key[len(batches_prefix(run_id, job_key)) :])
    return (int(m.group(1)), int(m.group(2))) if m else None


def servers_prefix(run_id: str) -> str:
    return f"{JOBS_PREFIX}/{run_id}/servers/"


def server_key(run_id: str, worker: int | str) -> str:
    return f"{servers_prefix(run_id)}{worker}.json"
