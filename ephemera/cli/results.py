"""The user's own results, first: a run's outcome, its workload's result or traceback,
and its output objects (``runs show``, ``ephemera outputs`` and the dashboard).

A run's *state* says where its resources are (RUNNING, DESTROYED, ...); its *outcome*
says how its work went: the last of SUCCEEDED, FAILED, TIMED_OUT or APPLY_FAILED it
entered, CANCELLED for a run torn down before its workload ended, and the state
itself while neither has happened. A DESTROYED run keeps the outcome it had.

The output objects are what is under the job's own output prefix in its output
bucket (what the workload wrote there, whichever client it used, and the completion
marker), listed from the store itself, not from what the workload said it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

from ephemera.context import Context
from ephemera.errors import EphemeraError
from ephemera.model.runs import ENDED_STATES, RunRecord, RunState
from ephemera.storage.base import Storage

S = RunState
_ENDED = {str(s) for s in ENDED_STATES}
_TEARDOWN = (S.DESTROYING, S.DESTROYED, S.DESTROY_FAILED)
CANCELLED = "CANCELLED"  # torn down before the workload ended (by hand, or a request that never applied)
LINK_SECONDS = 3600  # how long a presigned link (`ephemera outputs --presign`) lives
MAX_OUTPUTS_SHOWN = 200  # `runs show` and the dashboard list this many; `ephemera outputs` lists all


def outcome(run: RunRecord) -> str:
    """How the run's work went: its last ended state, CANCELLED, or its state while in progress."""
    ended = [t.state for t in run.transitions if t.state in _ENDED]
    if ended:
        return ended[-1]
    return CANCELLED if run.state in _TEARDOWN else str(run.state)


def teardown(run: RunRecord) -> str:
    """Where the run's resources are: its state once teardown began, else "up" (or "" before an apply)."""
    if run.state in _TEARDOWN:
        return str(run.state)
    return "" if run.state == S.REQUESTED else "up"


def workload_result(run: RunRecord):
    """What the workload returned (its success marker's ``result``), or None."""
    return (run.result or {}).get("result") if (run.result or {}).get("status") == "succeeded" else None


def workload_traceback(run: RunRecord) -> str:
    """The failed workload's traceback (file, line) from its failure marker, or ""."""
    error = (run.result or {}).get("error")
    return str(error.get("traceback") or "") if isinstance(error, dict) else ""


@dataclass(frozen=True)
class OutputObject:
    name: str  # the key below the run's output prefix, e.g. "metrics.json" or "plots/a.png"
    key: str  # the whole key in the output bucket
    size: int  # bytes
    link: str | None  # where it is (see object_link), None where it cannot be said


def object_link(storage: Storage, bucket: str, key: str, presign: bool = False) -> str | None:
    """Where an output object is, as a link that carries no credential: its ``file://``
    path on storage on this machine, else ``<backend>://bucket/key`` (the form Lithops'
    ``obj`` iterdata and the bridge take). With ``presign``, an HTTPS URL that lets its
    holder read it for LINK_SECONDS: it names the storage key id in its query (which
    Ephemera otherwise masks as a secret), so it is only made when asked for; None where
    the store cannot presign (IBM COS with IAM tokens)."""
    if storage.traits.same_host or presign:
        try:
            return storage.presign(bucket, key, "GET", LINK_SECONDS)
        except EphemeraError:
            return None
    return f"{storage.backend}://{bucket}/{key}"


def output_objects(
    ctx: Context, run: RunRecord, links: bool = True, limit: int | None = None, presign: bool = False
) -> tuple[str, str, list[OutputObject]]:
    """``(bucket, prefix, objects)`` under the run's output prefix, in key order; no job, no objects."""
    if run.job is None:
        return "", "", []
    bucket, prefix = run.job.output_bucket, run.job.output_prefix
    out: list[OutputObject] = []
    for info in ctx.storage.list(bucket, prefix):
        if limit is not None and len(out) >= limit:
            break
        link = object_link(ctx.storage, bucket, info.key, presign) if links else None
        out.append(OutputObject(info.key[len(prefix) :], info.key, info.size, link))
    return bucket, prefix, out


def output_objects_or_note(
    ctx: Context, run: RunRecord, links: bool = True, limit: int | None = MAX_OUTPUTS_SHOWN
) -> tuple[list[OutputObject], str]:
    """The output objects for a page that must show anyway: ``(objects, note)`` where the
    note says why there are none (no job, nothing written, the store unreadable)."""
    if run.job is None:
        return [], "no job: this run never requested a workload"
    try:
        bucket, prefix, objects = output_objects(ctx, run, links, limit)
    except EphemeraError as exc:
        return [], f"the outputs could not be listed: {ctx.scrubber.scrub(exc.message)}"
    return objects, "" if objects else f"nothing under {bucket}/{prefix} (yet)"
