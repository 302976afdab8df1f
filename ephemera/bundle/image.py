"""Prepared images: an environment built once from a bundle's lock, that runs of that lock start from.

A run's VMs spend most of their paid boot installing the bundle's requirements. A
*prepared image* holds them already: ``ephemera image build`` (:mod:`ephemera.bundle.imagebuild`)
makes one and records it in the state bucket at :func:`ephemera.layout.image_key`
(``images/<stack>/<lock sha256>.json``: an :class:`ImageRecord`). At apply,
:func:`find_image` looks up the record of the run's lock and, when it is one this machine
can trust, the boot documents name it and the run's bundle record carries its id
(``bundle["image"]``); the VM then installs only what the image lacks.

Locally (a stack whose VMs are processes here) an image is a read-only folder
``<home>/images/<stack>/<lock sha256>/`` holding ``env/``: the environment a stock local
VM would install (:mod:`ephemera.vm.imageboot`), and the record's ``digest`` is that
folder's tree digest. The *lock* of a local run (:func:`local_lock`) is what decides that
environment: the interpreter, the workload's requirements and the wheelhouse's content
hash (which pins every wheel by its own hash).

On a cloud stack an image is a machine image (an AMI, an IBM VPC image) whose builder
installed the bundle's ``requirements.lock`` into :data:`CLOUD_IMAGE_ENV`; a run's lock is
:func:`cloud_lock_sha256`. A matching record of the kind the stack's spec names
(``prepared_image``) gives the stack its image variables (the id, ``custom_image = true``),
unless ``workspace.variables`` chose the boot image (:func:`user_choice`: the user wins).
The image is the VMs' whole disk, so a record naming one must come from the controller: a
cloud record is signed with the controller's signing key (:func:`record_signature`, as
:mod:`ephemera.runkeys` signs what VMs run) and one without a valid signature is ignored.

Who can write an image record? Whoever can write the state bucket -- the controller's
keys, never a run's VMs (:func:`ephemera.layout.run_prefixes` grants none of
``images/``). So a record is checked before it is used: a local image's path must be
exactly the folder its stack and lock name inside this home's image store (a record
pointing anywhere else, or a store entry that is a link out of it, is refused), and a
cloud image's id must have its cloud's format (:data:`IMAGE_ID_FORMATS`); the VM checks
the folder's digest again before it uses it. A record that fails is ignored with a
warning: the run installs the stock way.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from ephemera import layout
from ephemera.errors import EphemeraError, ImageError, NoSuchKeyError
from ephemera.runkeys import signing_key
from ephemera.stack import config_stack
from ephemera.storage.base import Storage

log = logging.getLogger("ephemera.image")
IMAGE_FORMAT = 1
IMAGES_DIR = "images"  # in the Ephemera home: the local image store
SHA256 = re.compile(r"^[0-9a-f]{64}$")
# a cloud image's id, by kind: IBM VPC image ids (region code, then a UUID); AWS AMI ids
IMAGE_ID_FORMATS = {
    "local": re.compile(r"^local-[0-9a-f]{12}$"),
    "ibm": re.compile(r"^r[0-9]{3}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
    "aws": re.compile(r"^ami-(?:[0-9a-f]{8}|[0-9a-f]{17})$"),
}
# where a cloud image builder (terraform/*-image-builder) installs the lock, and the file it
# writes beside it, holding the lock's SHA-256, only once all of it installed
CLOUD_IMAGE_ENV = "/opt/ephemera/image/env"
RECORD_DOMAIN = b"ephemera image record\0"  # what a record's signature is over, before its fields
REBUILD_FIX = "build it again with `ephemera image build`, or delete it with `ephemera image delete`"


@dataclass(frozen=True)
class ImageRecord:
    """A prepared image, as the state bucket keeps it (``images/<stack>/<lock sha256>.json``)."""

    id: str  # local-<lock sha256[:12]>, an IBM image id or an AMI id
    kind: str  # local, ibm or aws: which check its id and path get
    stack: str  # the stack whose runs use it
    lock_sha256: str  # the SHA-256 of the lock it was built from: what a run matches on
    built_at: str  # ISO time the build finished
    python: str  # the interpreter (and version) its environment runs
    size: int  # bytes it holds (local: the folder)
    holds: list[str] = field(default_factory=list)  # name==version of what it installed
    requirements: list[str] = field(default_factory=list)  # the workload's requirements it was built for
    path: str | None = None  # local: its folder, inside the home's image store
    site: str | None = None  # local: its site-packages, relative to path
    digest: str | None = None  # local: the folder's tree digest (ephemera.vm.imageboot.tree_digest)
    format: int = IMAGE_FORMAT  # of this record
    workspace: str | None = None  # cloud: the workspace holding only the image (``image delete`` destroys it)
    engine: str | None = None  # cloud: the engine of that workspace (terraform | schematics)
    engine_workspace_id: str | None = None  # cloud, schematics: the Schematics workspace id of that workspace
    build_id: str | None = None  # cloud: the build (its ledger record) that made it
    signature: str | None = None  # HMAC-SHA256 of the other fields under the controller's signing key (cloud: required)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: object) -> "ImageRecord":
        """The record in ``raw``; ImageError naming the first field that is missing or malformed."""
        if not isinstance(raw, dict) or raw.get("format") != IMAGE_FORMAT:
            raise ImageError("format", f"is not an image record of format {IMAGE_FORMAT}", REBUILD_FIX)
        known = {f.name for f in fields(cls)}
        for name in ("id", "kind", "stack", "lock_sha256", "built_at", "python"):
            if not isinstance(raw.get(name), str) or not raw[name]:
                raise ImageError(name, "is missing or not a string", REBUILD_FIX)
        record = cls(**{k: v for k, v in raw.items() if k in known})
        pattern = IMAGE_ID_FORMATS.get(record.kind)
        if pattern is None:
            raise ImageError("kind", f"'{record.kind}' is not one of {', '.join(IMAGE_ID_FORMATS)}", REBUILD_FIX)
        if not pattern.match(record.id):
            raise ImageError("id", f"'{record.id[:80]}' is not a {record.kind} image id", REBUILD_FIX)
        if not SHA256.match(record.lock_sha256):
            raise ImageError("lock_sha256", "is not a SHA-256", REBUILD_FIX)
        if record.signature is not None and not (isinstance(record.signature, str) and SHA256.match(record.signature)):
            raise ImageError("signature", "is not an HMAC-SHA256 in hex", REBUILD_FIX)
        if record.kind == "local" and not (record.path and record.site and record.digest and SHA256.match(record.digest)):
            raise ImageError("path", "a local image needs its path, site and digest", REBUILD_FIX)
        return record


def local_image_id(lock_sha256: str) -> str:
    return f"local-{lock_sha256[:12]}"


def python_tag() -> str:
    return f"{sys.executable} ({sys.version.split()[0]})"


def local_lock(requirements: list[str], wheelhouse_sha256: str | None) -> str:
    """The lock of a local run's environment: what decides what its VMs install. Local VMs
    install from this interpreter's site-packages and the bundle's wheelhouse, so the lock
    is the interpreter, the requirements and the wheelhouse's content hash."""
    return json.dumps(
        {"format": IMAGE_FORMAT, "python": python_tag(), "requirements": list(requirements), "wheelhouse": wheelhouse_sha256},
        sort_keys=True,
    )


def lock_sha256(text: str) -> str:
    """The SHA-256 of a lock's text. A cloud image's lock is the bundle's hashed
    ``requirements.lock`` (:mod:`ephemera.bundle.lock`), taken as it is."""
    return hashlib.sha256(text.encode()).hexdigest()


def cloud_lock_sha256(lock: bytes) -> str:
    """The lock hash of a cloud run and of a cloud image: the SHA-256 of the bundle's
    ``requirements.lock`` bytes, exactly what a cloud VM installs (every line pinned by
    hash, Ephemera's own dependencies included; only Ephemera's wheel is not in it). The
    builder installs these bytes and writes this hash beside the environment; the VM
    hashes the lock it unpacked and compares both before using the image."""
    return hashlib.sha256(lock).hexdigest()


def image_store(config) -> Path:
    """The home's image store (not created here)."""
    return Path(config.home) / IMAGES_DIR


def image_dir(config, stack: str, sha256: str) -> Path:
    """The folder of the local image of ``stack`` built from the lock ``sha256``."""
    if not SHA256.match(sha256) or "/" in stack or stack.startswith("."):
        raise ImageError("lock_sha256", f"'{sha256[:80]}' of stack '{stack}' names no image folder", REBUILD_FIX)
    return image_store(config) / stack / sha256


def local_record_file(config, stack: str, sha256: str) -> Path:
    """The copy of a local image's record beside its folder (the demo, whose state bucket is new
    each time, reads it there)."""
    return image_dir(config, stack, sha256).with_suffix(".json")


def stack_name(config) -> str:
    """The stack name image records are kept under: the registered name, or a stack folder's name."""
    return config_stack(config).name


def local_path_problem(config, record: ImageRecord) -> str | None:
    """Why this machine must not use the local image ``record`` (None: it may): its path is
    not exactly its store folder, the folder is a link out of the store, or it is gone."""
    try:
        expected = image_dir(config, record.stack, record.lock_sha256)
    except ImageError as exc:
        return exc.message
    if record.path != str(expected):
        return f"its path {record.path!r} is not {expected}, the image store's folder for its lock"
    store = image_store(config).resolve()
    if expected.is_symlink() or store not in expected.resolve().parents:
        return f"{expected} leads out of the image store {store}"
    if not expected.is_dir():
        return f"its folder {expected} is missing"
    return None


def get_record(storage: Storage, bucket: str, stack: str, sha256: str) -> ImageRecord | None:
    """The record of ``stack``'s image of lock ``sha256``; None if there is none; ImageError
    if the object there is not a valid record."""
    try:
        data = storage.get(bucket, layout.image_key(stack, sha256))
    except NoSuchKeyError:
        return None
    try:
        raw = json.loads(data)
    except ValueError:
        raise ImageError("(record)", f"{layout.image_key(stack, sha256)} is not JSON", REBUILD_FIX) from None
    record = ImageRecord.from_dict(raw)
    if record.stack != stack or record.lock_sha256 != sha256:
        raise ImageError("lock_sha256", f"the record at {layout.image_key(stack, sha256)} names another image", REBUILD_FIX)
    return record


def record_signature(signing: str, record: ImageRecord) -> str:
    """The HMAC-SHA256 under the signing key ``signing`` (:func:`ephemera.runkeys.signing_key`)
    of every field of ``record`` but its signature."""
    body = json.dumps({k: v for k, v in record.to_dict().items() if k != "signature"}, sort_keys=True)
    return hmac.new(signing.encode("utf-8"), RECORD_DOMAIN + body.encode(), hashlib.sha256).hexdigest()


def put_record(storage: Storage, bucket: str, record: ImageRecord, signing: str | None = None) -> None:
    """Store ``record``, signed with ``signing`` when given (a cloud record must be: a run
    boots a cloud image only from a record signed with its controller's key)."""
    if signing is not None:
        record = replace(record, signature=record_signature(signing, record))
    storage.put(bucket, layout.image_key(record.stack, record.lock_sha256), json.dumps(record.to_dict(), indent=1).encode())


def list_records(storage: Storage, bucket: str) -> list[ImageRecord | ImageError]:
    """Every image record in the bucket, or the error that makes one unusable."""
    found: list[ImageRecord | ImageError] = []
    for info in storage.list(bucket, layout.image_prefix()):
        stack, _, name = info.key[len(layout.IMAGES) :].partition("/")
        try:
            record = get_record(storage, bucket, stack, name.removesuffix(".json"))
        except ImageError as exc:
            found.append(exc)
            continue
        if record is not None:
            found.append(record)
    return found


def run_lock_sha256(config, ref) -> str | None:
    """The lock hash a run of ``config`` with the bundle ``ref`` matches images on: a local
    stack's :func:`local_lock`, a cloud stack's :func:`cloud_lock_sha256` (recorded in the
    bundle's manifest); None where the stack boots no prepared image or the bundle has no lock."""
    spec = config_stack(config)
    if spec.vms_on_host:
        return lock_sha256(local_lock(list(ref.requirements), ref.wheelhouse_sha256))
    return ref.lock_sha256 if spec.prepared_image is not None else None


def user_choice(config, variables: dict | None = None) -> list[str]:
    """The user's variables (``variables``: the run's, a capacity-ladder rung's over
    ``workspace.variables``; default: those) by which they chose a cloud run's boot image
    themselves (their choice wins over a prepared image)."""
    image = config_stack(config).prepared_image
    if image is None:
        return []
    names = (image.variable, image.flag, *image.user_choice)
    given = config.workspace.variables if variables is None else variables
    return [n for n in names if n in (given or {})]


def cloud_problem(config, record: ImageRecord) -> str | None:
    """Why a cloud run of ``config`` must not boot ``record`` (None: it may)."""
    image = config_stack(config).prepared_image
    if image is None or record.kind != image.kind:
        return f"it is a {record.kind} image, and the stack {record.stack} boots {image.kind if image else 'no'} images"
    if not record.signature or not hmac.compare_digest(record.signature, record_signature(signing_key(config), record)):
        return "it is not signed with this controller's signing key (security.signing_key): build it with this controller"
    return None


def find_image(config, storage: Storage, ref, variables: dict | None = None) -> ImageRecord | None:
    """The prepared image a run of ``config`` with the bundle ``ref`` starts from, if one was
    built from its lock and checks out here and the user's ``variables`` (see :func:`user_choice`)
    choose no image; else None (a record that does not check out is named in a warning, and
    the run installs the stock way)."""
    sha = run_lock_sha256(config, ref)
    if sha is None:
        return None
    stack = stack_name(config)
    try:
        record = get_record(storage, config.state_bucket, stack, sha)
        if record is None:
            problem = None
        elif config_stack(config).vms_on_host:
            problem = local_path_problem(config, record) if record.kind == "local" else f"a {record.kind} image on a local stack"
        else:
            problem = cloud_problem(config, record)
    except EphemeraError as exc:  # an image is an optimisation: nothing about it fails a run
        record, problem = None, exc.message
    if problem:
        log.warning(
            "prepared image for lock %s of stack %s not used: %s; the VMs install the stock way", sha[:12], stack, problem
        )
        return None
    if record is not None and (chosen := user_choice(config, variables)):
        log.info(
            "prepared image %s of lock %s not used: the run's variables %s choose the boot image",
            record.id,
            sha[:12],
            ", ".join(chosen),
        )
        return None
    return record


def boot_image(record: ImageRecord) -> dict:
    """The boot document's ``image``: what a VM needs to check and use it (local: its folder
    and tree digest; cloud: the environment the builder made and the lock it must hold)."""
    cloud = record.kind != "local"
    return {
        "id": record.id,
        "path": record.path,
        "site": record.site,
        "digest": record.digest,
        "env": CLOUD_IMAGE_ENV if cloud else None,
        "lock_sha256": record.lock_sha256 if cloud else None,
    }


def image_variables(config, record: ImageRecord | None) -> dict:
    """The stack variables that boot a cloud run from ``record``: its id, and the flag
    saying the image has the driver and uv ({} for none, or a local image)."""
    image = config_stack(config).prepared_image
    if record is None or image is None or record.kind != image.kind:
        return {}
    return {image.variable: record.id, image.flag: True}
