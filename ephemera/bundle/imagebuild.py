"""Building and deleting local prepared images (``ephemera image build|delete``).

A build packs the config's bundle (:mod:`ephemera.bundle.pack`: the wheel, the
requirements and the wheelhouse of what this machine lacks), then installs it into a
temporary folder of the image store exactly as a stock local VM would -- the same
bootstrap code, run as ``python -m ephemera.vm.imageboot --build-image``, offline, the
wheelhouse checked wheel by wheel -- less the workload's source. The folder is made
read-only (so no run writes into it, not even Python's byte-code cache), its tree digest
taken, it is renamed into place, and only then is the record written (in the state bucket,
then a copy beside the folder, ``<sha256>.json``, which the demo reads): a build that fails
or is killed at any step leaves no record, and no folder under the image's name (a killed
build's ``.part`` folder is removed by the next build of that lock).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

from ephemera import layout
from ephemera.bundle.image import (
    ImageRecord,
    get_record,
    image_dir,
    local_image_id,
    local_lock,
    local_path_problem,
    local_record_file,
    lock_sha256,
    put_record,
    python_tag,
    stack_name,
)
from ephemera.bundle.pack import Bundle, pack
from ephemera.errors import ImageError
from ephemera.files import write_private
from ephemera.stack import config_stack
from ephemera.storage import storage_spec
from ephemera.storage.base import Storage
from ephemera.timeutil import now_iso

BUILD_LOG = "bootstrap.log"
BUILD_TIMEOUT_S = 3600
CLOUD_FIX = "`ephemera image build` builds cloud images with their builder (ephemera.bundle.cloudimage)"


def _digest(folder: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ephemera.vm.imageboot", "--digest", str(folder)], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def set_writable(folder: Path, writable: bool) -> None:
    """Make everything under ``folder`` (links left alone) writable by its owner, or by nobody."""
    for top, dirs, files in os.walk(folder):
        for name in [*dirs, *files, ""]:
            path = Path(top) / name
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            path.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def remove_folder(folder: Path) -> None:
    """Delete an image folder, read-only as it is."""
    if folder.is_symlink():
        folder.unlink()
    elif folder.exists():
        set_writable(folder, True)
        shutil.rmtree(folder)


def _holds(env: Path) -> list[str]:
    found = []
    for meta in env.glob("lib/python*/site-packages/*.dist-info"):
        name, _, version = meta.name[: -len(".dist-info")].partition("-")
        found.append(f"{name}=={version}")
    return sorted(found)


def _size(folder: Path) -> int:
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _boot_document(config, bundle: Bundle) -> dict:
    """What the builder's install reads: the bundle and its wheelhouse by file URL, and what
    a local VM's document has (this interpreter and its site-packages, offline)."""
    house = bundle.manifest.get("local_wheelhouse")
    paths = sysconfig.get_paths()
    return {
        "bundle": {
            "key": layout.bundle_key(bundle.sha256),
            "sha256": bundle.sha256,
            "size": bundle.size,
            "url": bundle.path.resolve().as_uri(),
            "wheelhouse": {"key": layout.wheelhouse_key(house["sha256"]), "url": bundle.wheelhouse.resolve().as_uri()}
            if house and bundle.wheelhouse
            else None,
        },
        "extras": list(storage_spec(config.storage.backend).vm_extras),
        "python": sys.executable,
        "inherit_site": sorted({paths["purelib"], paths["platlib"]}),  # as the local stack gives its VMs
        "offline": True,
    }


def _install(config, bundle: Bundle, part: Path) -> None:
    """Install the bundle into ``part/env``; ImageError with the log's tail if it fails."""
    part.mkdir(parents=True)
    boot_file = part / "build.json"
    boot_file.write_text(json.dumps(_boot_document(config, bundle)))
    cmd = [sys.executable, "-m", "ephemera.vm.imageboot", "--build-image", str(boot_file), "--root", str(part)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        failed = done.returncode != 0
    except subprocess.TimeoutExpired:
        failed = True
    if failed:
        log = part / BUILD_LOG
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-12:]) if log.is_file() else ""
        raise ImageError(
            "workload.requirements",
            f"the image's environment could not be installed:\n{tail}",
            "fix what the log names, then build again",
        )
    boot_file.unlink()
    for leftover in ("bundle", "wheelhouse"):  # the unpacked bundle and wheels: the run brings its own
        shutil.rmtree(part / leftover, ignore_errors=True)


def build_local(config, storage: Storage, force: bool = False) -> tuple[ImageRecord, bool]:
    """The local image of ``config``'s workload, built now unless a good one is recorded
    (``force``: build again); (its record, whether it was built now)."""
    stack = stack_name(config)
    if not config_stack(config).vms_on_host:
        raise ImageError("workspace.stack", f"stack '{stack}' runs cloud VMs: this builds local images only", CLOUD_FIX)
    bundle = pack(config, Path(config.home) / "bundles")
    house = bundle.manifest.get("local_wheelhouse")
    sha = lock_sha256(local_lock(list(bundle.manifest["requirements"]), house["sha256"] if house else None))
    bucket = config.state_bucket
    try:
        existing = get_record(storage, bucket, stack, sha)
    except ImageError:
        existing = None  # an unusable record is replaced
    if (
        existing is not None
        and not force
        and local_path_problem(config, existing) is None
        and _digest(Path(existing.path or "")) == existing.digest
    ):
        return existing, False
    folder = image_dir(config, stack, sha)
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in folder.parent.glob(f".{sha}.*.part"):  # a killed build's
        remove_folder(stale)
    part = folder.parent / f".{sha}.{os.getpid()}.part"
    try:
        _install(config, bundle, part)
        env = part / "env"
        site = next(env.glob("lib/python*/site-packages"))
        holds, size = _holds(env), _size(part)
        set_writable(part, False)
        digest = _digest(part)
        storage.delete(bucket, layout.image_key(stack, sha))  # the old record first: never one naming a folder being replaced
        remove_folder(folder)
        os.replace(part, folder)
    except BaseException:
        remove_folder(part)
        raise
    record = ImageRecord(
        id=local_image_id(sha),
        kind="local",
        stack=stack,
        lock_sha256=sha,
        built_at=now_iso(),
        python=python_tag(),
        size=size,
        holds=holds,
        requirements=list(bundle.manifest["requirements"]),
        path=str(folder),
        site=site.relative_to(part).as_posix(),
        digest=digest,
    )
    put_record(storage, bucket, record)  # last: a record names a finished image
    write_private(local_record_file(config, stack, sha), json.dumps(record.to_dict(), indent=1).encode())
    return record, True


def delete_image(config, storage: Storage, record: ImageRecord) -> None:
    """Delete the record (first: no run picks the image up any more), then a local image's folder."""
    storage.delete(config.state_bucket, layout.image_key(record.stack, record.lock_sha256))
    if record.kind == "local":
        local_record_file(config, record.stack, record.lock_sha256).unlink(missing_ok=True)
        remove_folder(image_dir(config, record.stack, record.lock_sha256))
