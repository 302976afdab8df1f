"""The controller's side of a VM's boot: the bundle stored once, and each VM's boot document.

``prepare_boot(ctx, run)`` packs the run's bundle, stores it in the state bucket under
its content hash (``ephemera/bundles/<sha256>.tar.gz``; a bundle already there is
reused, not uploaded again), and writes one *boot document* per VM. A boot document
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ephemera import layout
from ephemera.bundle.pack import Bundle, pack
from ephemera.errors import ConfigError, NoSuchKeyError
from ephemera.model import marker as markers
from ephemera.storage import storage_spec
from ephemera.storage.base import Storage

log = logging.getLogger("ephemera.bundle")
BOOT_FORMAT = 1
BOOTSTRAP = Path(__file__).resolve().parents[1] / "vm" / "bootstrap.py"


@dataclass(frozen=True)
class BundleRef:
    """The bundle a run's VMs install, as the run record keeps it."""

    key: str  # its key in the state bucket
    sha256: str  # content hash of the archive
    size: int  # bytes
    wheel: str  # Ephemera's wheel inside it
    requirements: list = field(default_factory=list)  # the workload's declared requirements
    source_files: int = 0  # files of workload.source it carries
    reused: bool = False  # it was in the bucket already (uploaded by an earlier run)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Boot:
    """What apply hands the engine for the VMs."""

    bundle: BundleRef  # recorded in the run
    documents: list  # one boot document (dict) per worker
    variables: dict  # the Terraform variables carrying them (no secret)


def publish(storage: Storage, bucket: str, bundle: Bundle) -> BundleRef:
    """Store the bundle under its hash unless an equal one is there already."""
    key = layout.bundle_key(bundle.sha256)
    try:
        reused = storage.head(bucket, key).size == bundle.size
    except NoSuchKeyError:
        reused = False
    if not reused:
        storage.put(bucket, key, bundle.path.read_bytes())
    m = bundle.manifest
    return BundleRef(key=key, sha256=bundle.sha256, size=bundle.size, wheel=m["wheel"], requirements=list(m["requirements"]),
                     source_files=len(m["source_files"]), reused=reused)


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
    ref = publish(storage, bucket, pack(config, config.home / "bundles"))
    log.info("run %s: bundle %s (%d bytes, %s)", run.run_id, ref.sha256[:12], ref.size, "reused" if ref.reused else "uploaded")
    expires = int(config["timeouts"]["boot"])
    by_url = access.identity is None
    job = run.job
    marker_key = markers.key(job.output_prefix, success=False)
    common = {
        "format": BOOT_FORMAT, "run_id": run.run_id, "worker_count": job.worker_count, "state_bucket": bucket,
        "storage": {"backend": backend, backend: access.section}, "identity": access.identity,
        "extras": list(spec.vm_extras), "hard_deadline": run.hard_deadline, "entry": job.entry,
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
