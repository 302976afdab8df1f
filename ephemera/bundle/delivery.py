"""The controller's side of a VM's boot: the bundle stored once, and each VM's boot document.

``prepare_boot(ctx, run)`` gets the run's bundle into the state bucket -- packed now,
or the one published beforehand that ``workload.bundle`` names
(:mod:`ephemera.bundle.store`) -- and writes one *boot document* per VM. A boot document
holds no storage key and one secret, the run's key (:mod:`ephemera.runkeys`: it checks
the job spec and seals the bridge's objects, and dies with the run): the run and worker, the storage section without its keys, the
bundle's key, hash and -- where the storage can presign -- a short-lived GET URL,
and a presigned PUT URL for the run's failure marker (a bootstrap that fails before
Ephemera is installed still ends the run). How the VM gets storage access:

- with an identity (a kind the storage's spec names and the stack's spec accepts,
  e.g. a trusted profile through the VPC metadata service) it needs nothing more: the bootstrap and the agent authenticate as the VM;
- otherwise the storage's spec makes the run's keys
  (:meth:`~ephemera.storage.spec.StorageBackendSpec.vm_credentials`: on S3 temporary
  STS keys scoped to the run's prefixes, :func:`ephemera.layout.run_prefixes`; never
  the controller's own keys for a cloud VM), put in a one-time *credentials object*
  (``ephemera/credentials/<run_id>/<worker>-<nonce>.json``) with presigned GET and
  DELETE URLs that expire after ``CREDENTIALS_URL_SECONDS``: stage one of the
  bootstrap reads it first thing, before installing anything, and deletes it; the
  controller deletes any left over when the run is destroyed.

The other URLs expire after ``timeouts.boot`` (a VM that has not booted by then is
failed anyway). Where the spec offers a presigner (S3: a boot session allowed only
these objects), it signs every URL, so no URL names the controller's key. The
documents become the Terraform variable ``vm_boot`` (one base64 JSON per worker,
declared ``sensitive`` by every stack and handed to the engine as a secure variable,
which Schematics never shows again), the bootstrap program itself
``bootstrap_script`` (gzip + base64), so a VM runs the controller's own bootstrap, and
``run_prefixes`` (:func:`prefixes_variable`), the run's prefixes for a stack that
scopes a per-run VM identity to them. Where a prepared image was built from the run's lock
(:mod:`ephemera.bundle.image`), the documents name it and the run's bundle record its id;
a cloud stack also gets the image's variables (its spec's ``prepared_image``).
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from ephemera import layout
from ephemera.bundle.image import boot_image, find_image, image_variables
from ephemera.bundle.inputs import event_inputs
from ephemera.bundle.store import BundleRef, run_bundle
from ephemera.engines import engine_spec
from ephemera.errors import ConfigError
from ephemera.model import marker as markers
from ephemera.model.vmboot import BOOT_FORMAT, BootDocument, boot_to_json
from ephemera.runkeys import run_key
from ephemera.stack import check_vm_access, config_stack
from ephemera.storage import storage_spec
from ephemera.storage.base import Storage
from ephemera.storage.spec import RunScope
from ephemera.timeutil import now_utc

log = logging.getLogger("ephemera.bundle")
BOOTSTRAP = Path(__file__).resolve().parents[1] / "vm" / "bootstrap.py"
CREDENTIALS_URL_SECONDS = 600  # the credentials object's URLs: long enough for a VM's first boot, no more
DEADLINE_MARGIN_SECONDS = 600  # VM keys outlive the hard deadline by this much: the agent's last marker and logs


@dataclass(frozen=True)
class Boot:
    """What apply hands the engine for the VMs."""

    bundle: BundleRef  # recorded in the run
    documents: list[BootDocument]  # one boot document per worker
    variables: dict  # the Terraform variables that carry no secret (the bootstrap program, identity names)
    secure_variables: dict  # those that do: vm_boot (each document holds the run key)


def _encode(doc: BootDocument) -> str:
    return base64.b64encode(boot_to_json(doc)).decode()


def bootstrap_script() -> str:
    """The VM bootstrap program, gzip + base64 (how cloud-init's write_files takes it)."""
    return base64.b64encode(gzip.compress(BOOTSTRAP.read_bytes(), mtime=0)).decode()


def _presign(storage: Storage, bucket: str, key: str, method: str, expires: int, needed: bool) -> str | None:
    url = storage.presign(bucket, key, method, expires)
    if url is None and needed:
        raise ConfigError(
            "storage.backend",
            f"the {storage.backend} storage cannot presign here and its VMs have no identity",
            "give the VMs an identity (see the storage backend's settings) or use keys that can presign",
        )
    return url


def _credentials(storage: Storage, signer: Storage, bucket: str, key: str, creds: dict) -> dict:
    storage.put(bucket, key, json.dumps(creds).encode())
    return {
        "url": _presign(signer, bucket, key, "GET", CREDENTIALS_URL_SECONDS, True),
        "delete_url": _presign(signer, bucket, key, "DELETE", CREDENTIALS_URL_SECONDS, True),
        "expires_in": CREDENTIALS_URL_SECONDS,
    }


def run_scope(ctx, run, ref: BundleRef) -> RunScope:
    """What the run's VMs may reach, and for how long (until the hard deadline, plus a margin)."""
    job = run.job
    left = (datetime.fromisoformat(run.hard_deadline) - now_utc()).total_seconds()
    return RunScope(
        run_id=run.run_id,
        state_bucket=ctx.config.state_bucket,
        output_bucket=job.output_bucket,
        prefixes=layout.run_prefixes(
            run.run_id,
            job.output_prefix,
            ref.sha256,
            wheelhouse_sha256=ref.wheelhouse_sha256,
            inputs=event_inputs(ctx.config, job.event),
        ),
        seconds=int(max(0, left)) + DEADLINE_MARGIN_SECONDS,
        vms_on_host=engine_spec(ctx.config.engine.backend).vms_on_host(ctx.config),
    )


def prefixes_variable(scope: RunScope) -> dict:
    """The stacks' ``run_prefixes`` variable: what the run's VMs may touch (no secret), so a
    stack that gives its VMs a per-run identity (aws-ec2-gpu: an instance profile) can
    scope that identity's policy to the run without knowing the storage layout."""
    p = scope.prefixes
    return {
        "state_bucket": scope.state_bucket,
        "output_bucket": scope.output_bucket,
        "read": list(p.read),
        "write": list(p.write),
        "output": list(p.output),
        "inputs": [{"bucket": bucket, "key": key} for bucket, key in p.inputs],
    }


def remove_credentials(storage: Storage, bucket: str, run_id: str) -> int:
    """Delete the run's credentials objects a VM did not delete itself; how many there were."""
    left = list(storage.list(bucket, layout.credentials_prefix(run_id)))
    for info in left:
        storage.delete(bucket, info.key)
    return len(left)


def prepare_boot(ctx, run, user_variables: dict | None = None) -> Boot:
    """Pack and store the run's bundle, make the VMs' credentials, and write each VM's boot document.
    ``user_variables``: the user's variables of this apply (a capacity-ladder rung's over
    ``workspace.variables``; default: those), which may choose the boot image themselves."""
    config, storage, bucket = ctx.config, ctx.storage, ctx.config.state_bucket
    backend = config.storage.backend
    spec = storage_spec(backend)
    access = spec.vm_access(config)
    check_vm_access(config_stack(config), backend, access.identity)
    ref = run_bundle(config, storage)
    log.info("run %s: bundle %s (%d bytes, %s)", run.run_id, ref.sha256[:12], ref.size, "reused" if ref.reused else "uploaded")
    image = find_image(config, storage, ref, user_variables)
    if image is not None:
        ref = replace(ref, image=image.id)
        log.info("run %s: its VMs start from the prepared image %s", run.run_id, image.id)
    expires = int(config.timeouts.boot)
    by_url = access.identity is None
    job = run.job
    workers = range(int(job.worker_count or 1))
    marker_key = markers.key(job.output_prefix, success=False)
    scope = run_scope(ctx, run, ref)
    creds = spec.vm_credentials(config, access, scope) if access.identity is None else None
    creds_keys = [layout.credentials_key(run.run_id, w, secrets.token_hex(8)) for w in workers] if creds else []
    signer = storage
    if by_url:
        objects = (
            [("GET", bucket, ref.key), ("PUT", job.output_bucket, marker_key)]
            + ([("GET", bucket, ref.wheelhouse["key"])] if ref.wheelhouse else [])
            + [(m, bucket, k) for k in creds_keys for m in ("GET", "DELETE")]
        )
        signer = spec.vm_presigner(config, scope, objects, max(expires, CREDENTIALS_URL_SECONDS)) or storage
    common = {
        "format": BOOT_FORMAT,
        "run_id": run.run_id,
        "worker_count": job.worker_count,
        "state_bucket": bucket,
        "storage": {"backend": backend, backend: access.section},
        "identity": access.identity,
        "extras": list(spec.vm_extras),
        "hard_deadline": run.hard_deadline,
        "entry": job.entry,
        "run_key": run_key(config, run.run_id),  # a secret (ephemera.runkeys): vm_boot must be sensitive
        "bundle": {
            "key": ref.key,
            "sha256": ref.sha256,
            "size": ref.size,
            "url": _presign(signer, bucket, ref.key, "GET", expires, by_url) if by_url else None,
            "wheelhouse": {
                **ref.wheelhouse,
                "url": _presign(signer, bucket, ref.wheelhouse["key"], "GET", expires, by_url) if by_url else None,
            }
            if ref.wheelhouse
            else None,
        },
        "image": boot_image(image) if image is not None else None,
        "marker": {
            "bucket": job.output_bucket,
            "key": marker_key,
            "url": _presign(signer, job.output_bucket, marker_key, "PUT", expires, by_url) if by_url else None,
        },
    }
    documents: list[BootDocument] = []
    for worker in workers:
        delivery = _credentials(storage, signer, bucket, creds_keys[worker], creds) if creds else None
        documents.append({**common, "worker": worker, "credentials": delivery})  # type: ignore[typeddict-item]  # common is a dict of BootDocument's fields
    variables = {**access.variables, "bootstrap_script": bootstrap_script(), "run_prefixes": prefixes_variable(scope)}
    variables.update(image_variables(config, image))  # a cloud stack boots the prepared image itself
    return Boot(
        bundle=ref, documents=documents, variables=variables, secure_variables={"vm_boot": [_encode(d) for d in documents]}
    )
