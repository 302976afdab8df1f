"""The controller's side of a VM's boot: the bundle stored once, and each VM's boot document.

``prepare_boot(ctx, run)`` gets the run's bundle into the state bucket -- packed now,
or the one published beforehand that ``workload.bundle`` names
(:mod:`ephemera.bundle.store`) -- and writes one *boot document* per VM. A boot document
holds no secret: the run and worker, the storage section without its keys, the
bundle's key, hash and -- where the storage can presign -- a short-lived GET URL,
and a presigned PUT URL for the run's failure marker (a bootstrap that fails before
Ephemera is installed still ends the run). How the VM gets storage access:

- with an identity (IBM: a trusted profile through the VPC metadata service) it
  needs nothing more: the bootstrap and the agent authenticate as the VM;
- otherwise its keys go into a one-time *credentials object*
  (``ephemera/credentials/<run_id>/<worker>-<nonce>.json``) with presigned GET and
  DELETE URLs: the VM reads it and deletes it at once; the controller deletes any
  left over when the run is destroyed.

URLs expire after ``timeouts.boot`` (a VM that has not booted by then is failed
anyway). The documents become the Terraform variable ``vm_boot`` (one base64 JSON
per worker), and the bootstrap program itself ``bootstrap_script`` (gzip + base64),
so a VM runs the controller's own bootstrap.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from ephemera import layout
from ephemera.bundle.store import BundleRef, run_bundle
from ephemera.errors import ConfigError
from ephemera.model import marker as markers
from ephemera.runkeys import run_key
from ephemera.storage import storage_spec
from ephemera.storage.base import Storage

log = logging.getLogger("ephemera.bundle")
BOOT_FORMAT = 1
BOOTSTRAP = Path(__file__).resolve().parents[1] / "vm" / "bootstrap.py"


@dataclass(frozen=True)
class Boot:
    """What apply hands the engine for the VMs."""

    bundle: BundleRef  # recorded in the run
    documents: list  # one boot document (dict) per worker
    variables: dict  # the Terraform variables carrying them (no secret)


def _encode(doc: dict) -> str:
    return base64.b64encode(json.dumps(doc, sort_keys=True).encode()).decode()


def bootstrap_script() -> str:
    """The VM bootstrap program, gzip + base64 (how cloud-init's write_files takes it)."""
    return base64.b64encode(gzip.compress(BOOTSTRAP.read_bytes(), mtime=0)).decode()


def _presign(storage: Storage, bucket: str, key: str, method: str, expires: int, needed: bool) -> str | None:
    url = storage.presign(bucket, key, method, expires)
    if url is None and needed:
        raise ConfigError("storage.backend", f"the {storage.backend} storage cannot presign here and its VMs have no identity",
                          "give the VMs an identity (ibm_cos.trusted_profile_id) or use keys that can presign (HMAC)")
    return url


def _credentials(storage: Storage, bucket: str, run_id: str, worker: int, creds: dict, expires: int) -> dict:
    key = layout.credentials_key(run_id, worker, secrets.token_hex(8))
    storage.put(bucket, key, json.dumps(creds).encode())
    return {"url": _presign(storage, bucket, key, "GET", expires, True),
            "delete_url": _presign(storage, bucket, key, "DELETE", expires, True)}


def remove_credentials(storage: Storage, bucket: str, run_id: str) -> int:
    """Delete the run's credentials objects a VM did not delete itself; how many there were."""
    left = list(storage.list(bucket, layout.credentials_prefix(run_id)))
    for info in left:
        storage.delete(bucket, info.key)
    return len(left)


def prepare_boot(ctx, run) -> Boot:
    """Pack and store the run's bundle and write each VM's boot document."""
    config, storage, bucket = ctx.config, ctx.storage, ctx.config.state_bucket
    backend = config["storage"]["backend"]
    spec = storage_spec(backend)
    access = spec.vm_access(config)
    ref = run_bundle(config, storage)
    log.info("run %s: bundle %s (%d bytes, %s)", run.run_id, ref.sha256[:12], ref.size, "reused" if ref.reused else "uploaded")
    expires = int(config["timeouts"]["boot"])
    by_url = access.identity is None
    job = run.job
    marker_key = markers.key(job.output_prefix, success=False)
    common = {
        "format": BOOT_FORMAT, "run_id": run.run_id, "worker_count": job.worker_count, "state_bucket": bucket,
        "storage": {"backend": backend, backend: access.section}, "identity": access.identity,
        "extras": list(spec.vm_extras), "hard_deadline": run.hard_deadline, "entry": job.entry,
        "run_key": run_key(config, run.run_id),  # a secret (ephemera.runkeys): vm_boot must be sensitive
        "bundle": {"key": ref.key, "sha256": ref.sha256, "size": ref.size,
                   "url": _presign(storage, bucket, ref.key, "GET", expires, by_url) if by_url else None},
        "marker": {"bucket": job.output_bucket, "key": marker_key,
                   "url": _presign(storage, job.output_bucket, marker_key, "PUT", expires, by_url) if by_url else None},
    }
    documents = []
    for worker in range(int(job.worker_count or 1)):
        creds = (_credentials(storage, bucket, run.run_id, worker, access.credentials, expires)
                 if access.credentials else None)
        documents.append({**common, "worker": worker, "credentials": creds})
    variables = {**access.variables, "vm_boot": [_encode(d) for d in documents], "bootstrap_script": bootstrap_script()}
    return Boot(bundle=ref, documents=documents, variables=variables)
