"""Packing a run bundle: Ephemera's wheel, the workload source and its requirements.

The archive (``.tar.gz``) holds ``manifest.json`` (with the wheel's SHA-256),
``wheels/<ephemera wheel>``, ``requirements.txt``, for cloud VMs
``requirements.lock`` (:mod:`ephemera.bundle.lock`: everything they install, pinned
and hashed; the tar of its wheels for the VMs' platform, :mod:`ephemera.bundle.vmwheels`,
is written beside the archive, ``wheelhouse-<sha256>.tar``), for local VMs whose requirements this machine lacks ``wheelhouse.lock``
(:mod:`ephemera.bundle.wheelhouse`: the tar of its wheels is written beside the
archive, ``wheelhouse-<sha256>.tar``) and, when ``workload.source`` is set, ``source/``: the folder's
files (or the one file) that :mod:`ephemera.bundle.source` lets through: never the
config file, keys or links out of the folder, and nothing holding one of the
config's secrets. It is reproducible: members sorted, owned by 0:0,
dated 0, mode 0644 (0755 where the file is executable), gzip without a name or a
time. So its SHA-256 names its content, and equal content is stored once.

Relative ``workload.source`` and requirements-file paths are read from the config
file's folder (the working directory for a config given as a dict).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ephemera.bundle.image import cloud_lock_sha256
from ephemera.bundle.lock import LOCK_FILE, compile_lock, needs_lock, pins, source_only_wheels, vm_requirements
from ephemera.bundle.source import DEFAULT_IGNORE, SecretCheck, source_files
from ephemera.bundle.vmwheels import VM_PYTHONS
from ephemera.bundle.vmwheels import build as build_vm_wheelhouse
from ephemera.bundle.wheel import build_wheel
from ephemera.bundle.wheelhouse import Wheelhouse, missing_requirements, tar_member
from ephemera.bundle.wheelhouse import LOCK_FILE as WHEELHOUSE_LOCK
from ephemera.bundle.wheelhouse import build as build_wheelhouse
from ephemera.config.paths import resolve, workload_source
from ephemera.errors import ConfigError
from ephemera.storage import storage_spec

FORMAT = 1
__all__ = ["DEFAULT_IGNORE", "Bundle", "pack", "read_bundle", "requirements", "source_files", "source_path"]
SOURCE_DIR = "source"
MAX_SOURCE_BYTES = 200 * 1024 * 1024  # a workload folder is code, not data: data goes to the bucket


@dataclass(frozen=True)
class Bundle:
    """A packed bundle on this machine."""

    path: Path  # the archive
    sha256: str  # hex digest of the archive: its name in the state bucket
    size: int  # bytes
    manifest: dict  # what it holds (format, wheel, requirements, source files)
    wheelhouse: Path | None = None  # the tar of the wheels its lock pins, beside it (house_manifest names it)

    @property
    def house_manifest(self) -> dict | None:
        """The manifest's entry of its wheelhouse (the local or the cloud VMs'), or None."""
        return house_manifest(self.manifest)


def house_manifest(manifest: dict) -> dict | None:
    """A bundle manifest's wheelhouse entry {lock, sha256, size, files}: the local VMs' or the cloud VMs'."""
    return manifest.get("local_wheelhouse") or manifest.get("vm_wheelhouse")


def source_path(config) -> Path | None:
    """``workload.source`` resolved, or None; ConfigError if it does not exist."""
    path = workload_source(config)
    return path.resolve() if path is not None else None


def requirements(config) -> list[str]:
    """``workload.requirements`` as a list: the list itself, or the file's requirement lines."""
    value = config.workload.requirements
    if isinstance(value, list):
        return list(value)
    path = resolve(config, value)
    try:
        lines = path.read_text().splitlines()
    except OSError:
        raise ConfigError(
            "workload.requirements",
            f"the requirements file '{value}' cannot be read (looked at {path})",
            "fix the path, or list the requirements",
        ) from None
    reqs = [line.split("#", 1)[0].strip() for line in lines]
    options = [r for r in reqs if r.startswith("-")]
    if options:
        raise ConfigError(
            "workload.requirements",
            f"'{options[0]}' in {path}: options are not supported",
            "list plain requirements (name, version, extras, markers) only",
        )
    return [r for r in reqs if r]


def vm_extras(config) -> list[str]:
    """The Ephemera extras a cloud VM of this config needs: its storage's, and the GPU check's."""
    return sorted(set(storage_spec(config.storage.backend).vm_extras) | {"gpu"})


def config_file(config) -> Path | None:
    """The file the config was loaded from, or None (a config given as a dict)."""
    source = getattr(config, "source", None)
    return Path(source).resolve() if source and not str(source).startswith("<") else None


def pack(config, out_dir: str | Path, lock: bool | None = None, vm_pythons: Sequence[str] = VM_PYTHONS) -> Bundle:
    """Pack the bundle of a config's workload into ``out_dir``; ConfigError if the
    source has a link out of it or a file holding one of the config's secrets.
    ``lock``: carry a hashed lock (default: when the config's VMs install from an index);
    with one, its wheels for the cloud VMs (CPython ``vm_pythons``) are fetched into a
    wheelhouse beside the archive (:mod:`ephemera.bundle.vmwheels`); without one, the
    requirements this environment lacks are (:mod:`ephemera.bundle.wheelhouse`)."""
    out_dir = Path(out_dir)
    root = source_path(config)
    exclude = [p for p in [config_file(config)] if p is not None]
    files = source_files(root, config.workload.ignore, exclude) if root is not None else []
    if sum(p.stat().st_size for _, p in files) > MAX_SOURCE_BYTES:
        raise ConfigError(
            "workload.source",
            f"holds more than {MAX_SOURCE_BYTES >> 20} MiB of files",
            "put data in the bucket and read it from there, or add ignore patterns",
        )
    with tempfile.TemporaryDirectory(dir=out_dir if out_dir.is_dir() else None) as tmp:
        reqs = requirements(config)
        secrets = SecretCheck(config.secret_values())
        secrets.check("workload.requirements", "".join(r + "\n" for r in reqs).encode(), "workload.requirements")
        contents = []
        for name, path in files:
            data = path.read_bytes()
            secrets.check(name, data)
            contents.append((name, data, os.access(path, os.X_OK)))
        wheel = build_wheel(tmp)  # first: where no Ephemera is installed (a deployed action) this names the fix
        wheel_bytes = wheel.read_bytes()
        locked = needs_lock(config) if lock is None else lock
        vm_reqs = vm_requirements(vm_extras(config), reqs) if locked else []
        built = source_only_wheels(vm_reqs)
        lock_text = compile_lock(vm_reqs + pins(built), wheels=built) if locked else None
        missing = [] if locked else missing_requirements(reqs)
        house: Wheelhouse | None = build_wheelhouse(missing, out_dir) if missing else None
        vm_house = build_vm_wheelhouse(lock_text, built, out_dir, vm_pythons) if lock_text is not None else None
        manifest = {
            "format": FORMAT,
            "wheel": wheel.name,
            "wheel_sha256": hashlib.sha256(wheel_bytes).hexdigest(),
            "requirements": reqs,
            "lock": LOCK_FILE if locked else None,
            # what a cloud run matches prepared images on (ephemera.bundle.image.cloud_lock_sha256)
            "lock_sha256": cloud_lock_sha256(lock_text.encode()) if lock_text is not None else None,
            "wheelhouse": [w.name for w in built],
            "local_wheelhouse": (
                {"lock": WHEELHOUSE_LOCK, "sha256": house.sha256, "size": house.size, "files": house.files} if house else None
            ),
            "vm_wheelhouse": (
                {
                    "lock": LOCK_FILE,
                    "sha256": vm_house.sha256,
                    "size": vm_house.size,
                    "files": vm_house.files,
                    "pythons": list(vm_pythons),
                }
                if vm_house
                else None
            ),
            "entry": config.workload.entry,
            "source": SOURCE_DIR if root is not None else None,
            "source_files": [n for n, _ in files],
        }
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar_member(tar, "manifest.json", json.dumps(manifest, indent=1, sort_keys=True).encode())
            tar_member(tar, "requirements.txt", "".join(r + "\n" for r in reqs).encode())
            if lock_text is not None:
                secrets.check(LOCK_FILE, lock_text.encode(), "workload.requirements")
                tar_member(tar, LOCK_FILE, lock_text.encode())
            if house is not None:
                tar_member(tar, WHEELHOUSE_LOCK, house.lock.encode())
            tar_member(tar, f"wheels/{wheel.name}", wheel_bytes)
            for path in built:
                tar_member(tar, f"wheels/{path.name}", path.read_bytes())
            for name, data, executable in contents:
                tar_member(tar, f"{SOURCE_DIR}/{name}", data, executable)
    data = gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)
    digest = hashlib.sha256(data).hexdigest()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{digest}.tar.gz"
    path.write_bytes(data)
    beside = house or vm_house
    return Bundle(path=path, sha256=digest, size=len(data), manifest=manifest, wheelhouse=beside.path if beside else None)


def read_bundle(path: str | Path) -> Bundle:
    """A bundle archive written by :func:`pack` (e.g. by ``ephemera bundle pack``), read back;
    ConfigError if it is not one."""
    path = Path(path)
    try:
        data = path.read_bytes()
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            member = tar.extractfile("manifest.json")
            manifest = json.loads(member.read()) if member is not None else None
    except (OSError, tarfile.TarError, KeyError, ValueError) as exc:
        raise ConfigError(
            "bundle", f"'{path}' is not a run bundle ({type(exc).__name__})", "give the .tar.gz that `ephemera bundle pack` wrote"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(
            "bundle",
            f"'{path}' has no bundle manifest of format {FORMAT}",
            "pack it again with this version: `ephemera bundle pack`",
        )
    house = house_manifest(manifest)
    beside = path.parent / f"wheelhouse-{house['sha256']}.tar" if house else None
    if beside is not None and not beside.is_file():
        raise ConfigError(
            "bundle",
            f"'{path}' needs its wheelhouse '{beside.name}' beside it, and it is not there",
            "keep the files `ephemera bundle pack` wrote together, or pack again",
        )
    return Bundle(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data), manifest=manifest, wheelhouse=beside)
