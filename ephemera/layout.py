"""Where things live in object storage. Every module asks here for a key.

State bucket (``storage.bucket``)::

    ephemera/runs/<run_id>.json              the run record (the ledger)
    ephemera/jobs/<run_id>.json              the job spec the VMs read
    ephemera/heartbeats/<run_id>/<worker>    last heartbeat of each VM's agent
    ephemera/locks/<name>/<generation>.json  lock objects (see ephemera.locking.generations)
    ephemera/activations/<id>.json           activation records of the local runtime
    ephemera/bundles/<sha256>.tar.gz         run bundles, by content hash (see ephemera.bundle)
    ephemera/bundles/<sha256>.json           a published bundle's manifest
    ephemera/wheelhouses/<sha256>.tar        the wheels a bundle's lock names, by content hash (VMs read only)
    ephemera/images/<stack>/<lock sha256>.json  a prepared image built from that lock (see ephemera.bundle.image; VMs never)
    ephemera/credentials/<run_id>/<worker>-<nonce>.json  one VM's storage keys, deleted once read
    ephemera/logs/<run_id>/<source>/<stream>/<chunk>.log  shipped log chunks (see ephemera.model.logs)
    ephemera/notified/<run_id>/<state>.json  one per run and state notified (see ephemera.notify)
    ephemera/checkpoints/<run_id>/<name>     the workload's checkpoints (ctx.checkpoint): a recovered VM restores them
    ephemera/budget-notified/<YYYY-MM>/<scope>/<percent>.json  one per month, monthly cap and share notified
    ephemera/events/<sha256>/<generation>.json  the claim of one event by one run (see ephemera.lifecycle.event_claims)
    lithops.jobs/<run_id>/...                the run's Lithops standalone jobs: queue, batches, servers
                                             (the bridge's own keys; named here for run_prefixes)

Terraform state bucket (``terraform.state.bucket``, when ``terraform.state.backend = "s3"``)::

    <state_prefix>/<workspace>/terraform.tfstate         a workspace's Terraform state
    <state_prefix>/<workspace>/terraform.tfstate.tflock  its lock, while an apply or destroy runs
    <state_prefix>/<workspace>/ephemera.owner.json       the run it was last applied for
    <state_prefix>/<workspace>/ephemera.variables.json   its non-sensitive variables, for a destroy elsewhere

Output bucket (``workload.output_bucket``, default the state bucket)::

    <output_prefix>/<run_id>/...             the workload's outputs
    <output_prefix>/<run_id>/_SUCCESS.json   completion marker (or _FAILURE.json)

The completion marker's names, shapes and parsing are :mod:`ephemera.model.marker`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

ROOT = "ephemera"
RUNS = f"{ROOT}/runs/"
JOBS = f"{ROOT}/jobs/"
HEARTBEATS = f"{ROOT}/heartbeats/"
LOCKS = f"{ROOT}/locks/"
ACTIVATIONS = f"{ROOT}/activations/"
ACTIVATIONS_STARTED = f"{ROOT}/activations-started/"  # invocations under way (removed with their record)
BUNDLES = f"{ROOT}/bundles/"
WHEELHOUSES = f"{ROOT}/wheelhouses/"
IMAGES = f"{ROOT}/images/"
CREDENTIALS = f"{ROOT}/credentials/"
LOGS = f"{ROOT}/logs/"
NOTIFIED = f"{ROOT}/notified/"
CHECKPOINTS = f"{ROOT}/checkpoints/"
BUDGET_NOTIFIED = f"{ROOT}/budget-notified/"
EVENTS = f"{ROOT}/events/"
TERRAFORM_STATES = f"{ROOT}/tfstate"  # the default terraform.state.prefix (no trailing '/', as a KeyPrefix)
LITHOPS_JOBS = "lithops.jobs/"  # the bridge's own prefix (lithops_bridge.constants.JOBS_PREFIX): the core names it here


def run_key(run_id: str) -> str:
    return f"{RUNS}{run_id}.json"


def run_id_of(key: str) -> str | None:
    """The run id of a run record's key; None for any other key."""
    if key.startswith(RUNS) and key.endswith(".json") and "/" not in key[len(RUNS) :]:
        return key[len(RUNS) : -len(".json")] or None
    return None


def job_key(run_id: str) -> str:
    return f"{JOBS}{run_id}.json"


def apply_lease_key(run_id: str) -> str:
    """Who is applying the run right now (host, process; signed with the run key)."""
    return f"ephemera/applying/{run_id}.json"


def heartbeat_prefix(run_id: str) -> str:
    return f"{HEARTBEATS}{run_id}/"


def heartbeat_key(run_id: str, worker: int | str) -> str:
    return f"{heartbeat_prefix(run_id)}{worker}.json"


def lock_key(name: str) -> str:
    return f"{LOCKS}{name}"


def activation_key(activation_id: str) -> str:
    return f"{ACTIVATIONS}{activation_id}.json"


def activation_started_key(activation_id: str) -> str:
    return f"{ACTIVATIONS_STARTED}{activation_id}.json"


def output_prefix(prefix: str, run_id: str) -> str:
    return f"{prefix.strip('/')}/{run_id}/" if prefix.strip("/") else f"{run_id}/"


def bundle_key(sha256: str) -> str:
    return f"{BUNDLES}{sha256}.tar.gz"


def bundle_manifest_key(sha256: str) -> str:
    """What a published bundle holds (its manifest, size and key), so an action needs not read the archive."""
    return f"{BUNDLES}{sha256}.json"


def wheelhouse_key(sha256: str) -> str:
    """A wheelhouse (the wheels a bundle's ``wheelhouse.lock`` pins, one tar) by its content hash."""
    return f"{WHEELHOUSES}{sha256}.tar"


def image_prefix(stack: str | None = None) -> str:
    """The prepared images' records, all or one stack's."""
    return f"{IMAGES}{stack}/" if stack else IMAGES


def image_key(stack: str, lock_sha256: str) -> str:
    """The record of the prepared image of ``stack`` built from the lock whose SHA-256 is ``lock_sha256``."""
    return f"{image_prefix(stack)}{lock_sha256}.json"


def credentials_prefix(run_id: str) -> str:
    return f"{CREDENTIALS}{run_id}/"


def credentials_key(run_id: str, worker: int, nonce: str) -> str:
    return f"{credentials_prefix(run_id)}{worker}-{nonce}.json"


def log_prefix(run_id: str) -> str:
    return f"{LOGS}{run_id}/"


def log_chunk_key(run_id: str, source: str, stream: int | str, chunk: str) -> str:
    """One chunk of a run's log: ``source`` (boot, agent, workload, engine), ``stream`` (a
    worker index, or an engine activity id) and ``chunk`` (a name that sorts in time)."""
    return f"{log_prefix(run_id)}{source}/{stream}/{chunk}.log"


def checkpoint_prefix(run_id: str) -> str:
    """Where a run's checkpoints live: every VM of the run (and of its recoveries, the same run id) reads and writes here."""
    return f"{CHECKPOINTS}{run_id}/"


def checkpoint_key(run_id: str, name: str) -> str:
    """One checkpoint of a run; ``name`` is a plain name (checked by the workload context)."""
    return f"{checkpoint_prefix(run_id)}{name}"


@dataclass(frozen=True)
class RunPrefixes:
    """What a run's VMs may touch, as key prefixes: the single source of a VM's scoped rights."""

    read: tuple[str, ...]  # state bucket, read only
    write: tuple[str, ...]  # state bucket, read, write and delete
    output: tuple[str, ...]  # output bucket, read, write and delete
    inputs: tuple[tuple[str, str], ...] = ()  # (bucket, key): single objects, read only, that exact key (the event's object)


def run_prefixes(
    run_id: str,
    run_output_prefix: str,
    bundle_sha256: str,
    wheelhouse_sha256: str | None = None,
    inputs: tuple[tuple[str, str], ...] = (),
) -> RunPrefixes:
    """The prefixes a run's VMs need: the job spec, the run's bundle and its wheelhouse if it
    has one (read); its heartbeats, logs, Lithops jobs and checkpoints (write); its own output prefix, where
    the completion markers go (``run_output_prefix``: the job's ``output_prefix``,
    ``<prefix>/<run_id>/``); and ``inputs``, the object whose write fired the run
    (:mod:`ephemera.bundle.inputs`)."""
    wheels = (wheelhouse_key(wheelhouse_sha256),) if wheelhouse_sha256 else ()
    return RunPrefixes(
        read=(job_key(run_id), bundle_key(bundle_sha256), bundle_manifest_key(bundle_sha256), *wheels),
        write=(heartbeat_prefix(run_id), log_prefix(run_id), lithops_jobs_prefix(run_id), checkpoint_prefix(run_id)),
        output=(run_output_prefix,),
        inputs=tuple(inputs),
    )


def notified_key(run_id: str, state: str) -> str:
    return f"{NOTIFIED}{run_id}/{state}.json"


def budget_notified_key(month: str, scope: str, percent: int) -> str:
    """The claim of the notice that spend in ``month`` (YYYY-MM) crossed ``percent`` of the
    monthly cap of ``scope`` ("overall", or "workspace/<name>")."""
    return f"{BUDGET_NOTIFIED}{month}/{scope}/{percent}.json"


# a run's prefixes and the event claims (issue 16) ------------------------------------
def event_claim_prefix(identity: str) -> str:
    """The generations of the claim of the event whose identity hash is ``identity``."""
    return f"{EVENTS}{identity}/"


def lithops_jobs_prefix(run_id: str) -> str:
    return f"{LITHOPS_JOBS}{run_id}/"


def tf_states_prefix(state_prefix: str) -> str:
    """Every workspace's folder in the Terraform state bucket ("" for the bucket's root)."""
    return f"{state_prefix.strip('/')}/" if state_prefix.strip("/") else ""


def tf_workspace_prefix(state_prefix: str, workspace: str) -> str:
    """Everything of one workspace in the Terraform state bucket."""
    return f"{tf_states_prefix(state_prefix)}{workspace}/"


def tf_state_key(state_prefix: str, workspace: str) -> str:
    """A workspace's Terraform state: the S3 backend's ``key``."""
    return tf_workspace_prefix(state_prefix, workspace) + "terraform.tfstate"


def tf_lock_key(state_prefix: str, workspace: str) -> str:
    """The lock object Terraform's S3 backend writes beside the state (``use_lockfile``)."""
    return tf_state_key(state_prefix, workspace) + ".tflock"


def tf_owner_key(state_prefix: str, workspace: str) -> str:
    """``{"run_id": ...}``: the run a remote-state workspace was last applied for."""
    return tf_workspace_prefix(state_prefix, workspace) + "ephemera.owner.json"


def tf_variables_key(state_prefix: str, workspace: str) -> str:
    """The non-sensitive variables a remote-state workspace was last applied with."""
    return tf_workspace_prefix(state_prefix, workspace) + "ephemera.variables.json"


def run_state_prefixes(run_id: str) -> list[str]:
    """Every state-bucket prefix that holds something of ``run_id`` (its record, job spec,
    heartbeats, credentials, logs, notifications, record lock, Lithops jobs, checkpoints): all empty
    before the run is requested. Its outputs live in the output bucket (:func:`output_prefix`)."""
    return [
        run_key(run_id),
        job_key(run_id),
        heartbeat_prefix(run_id),
        credentials_prefix(run_id),
        log_prefix(run_id),
        f"{NOTIFIED}{run_id}/",
        lock_key(f"run-{run_id}/"),
        lithops_jobs_prefix(run_id),
        apply_lease_key(run_id),
        checkpoint_prefix(run_id),
    ]
