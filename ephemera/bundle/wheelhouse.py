"""The wheelhouse: the wheels of a local run's requirements this machine lacks, fetched here.

Local VMs (the ``local`` stack) are processes on this machine: they see its
site-packages and install with ``--no-index``. A workload requirement this
environment does not satisfy (``tabulate>=0.9`` where tabulate is not installed) is
resolved and fetched **here, when the bundle is packed**: ``uv pip compile
--generate-hashes`` for this interpreter, wheels only, gives ``wheelhouse.lock`` (carried
in the bundle, so the bundle's SHA-256 covers it), and ``pip download --require-hashes``
fetches exactly those files. They travel as one reproducible tar (sorted, dated 0,
0:0), stored once per content hash at :func:`ephemera.layout.wheelhouse_key`, a key the
run's VMs may only read. The VM checks the tar's SHA-256 (from the bundle's manifest),
then each wheel's SHA-256 against the lock, and installs with ``--no-index
--find-links --require-hashes``: it never reaches an index.

Downloads are kept in the user's cache by the lock's hash, so a second pack of equal
requirements fetches nothing and gives the same tar (reused in the bucket, not uploaded
again). Without an index (offline), what cannot be fetched is named before an apply
(:func:`problems`, from :mod:`ephemera.bundle.preflight`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from ephemera.bundle.lock import cache_dir, compile_lock
from ephemera.errors import ConfigError

if TYPE_CHECKING:
    from packaging.requirements import Requirement

LOCK_FILE = "wheelhouse.lock"  # in the bundle: what the wheelhouse holds, pinned and hashed
REQUIREMENTS = "workload.requirements"


@dataclass(frozen=True)
class Wheelhouse:
    """A packed wheelhouse on this machine."""

    path: Path  # the tar of the wheels
    sha256: str  # its content hash: its name in the state bucket
    size: int  # bytes
    lock: str  # the hashed lock of exactly these wheels (wheelhouse.lock)
    files: list[str] = field(default_factory=list)  # the wheels' file names


def tar_member(tar: tarfile.TarFile, name: str, data: bytes, executable: bool = False) -> None:
    """Add ``data`` as ``name`` with nothing of this machine in it (owner 0:0, dated 0)."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o755 if executable else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def unsatisfied(parsed: Iterable[Requirement]) -> list[Requirement]:
    """The requirements (for this platform) this machine's environment does not satisfy."""
    missing = []
    for req in parsed:
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            have: str | None = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            have = None
        if have is None or not req.specifier.contains(have, prereleases=True):
            missing.append(req)
    return missing


def missing_requirements(lines: Iterable[str]) -> list[str]:
    """Those of the requirement ``lines`` that this environment lacks (lines that do not parse
    are the preflight's to report, and are left out here)."""
    from packaging.requirements import Requirement  # only where a bundle is packed: action packages lack it

    parsed = []
    for line in lines:
        try:
            parsed.append(Requirement(line))
        except ValueError:
            continue
    return [str(r) for r in unsatisfied(parsed)]


def _reason(exc: ConfigError) -> str:
    lines = [ln.strip() for ln in exc.message.splitlines()[1:] if ln.strip()]
    return lines[-1] if lines else exc.message


def _have(req: Requirement) -> str:
    try:
        return f"version {importlib.metadata.version(req.name)} is installed here"
    except importlib.metadata.PackageNotFoundError:
        return "it is not installed here"


def problems(missing: list[Requirement]) -> list[ConfigError]:
    """What the wheelhouse cannot hold of ``missing``, each requirement named with the fix:
    fetched together (into the cache :func:`build` packs from), or, when that fails, one by
    one to name exactly which cannot be."""
    if not missing:
        return []
    try:
        fetch([str(r) for r in missing])
        return []
    except ConfigError as whole:
        failed = []
        for req in missing:
            try:
                fetch([str(req)])
            except ConfigError as exc:
                failed.append((req, _reason(exc)))
        if not failed:  # each resolves alone: they conflict together
            return [
                ConfigError(
                    REQUIREMENTS,
                    f"the requirements this machine lacks cannot be resolved together for "
                    f"the local VMs' wheelhouse ({_reason(whole)})",
                    "fix or relax their versions",
                )
            ]
    out = []
    for req, reason in failed:
        fix = f"{shlex.quote(sys.executable)} -m pip install {shlex.quote(str(req))}"
        out.append(
            ConfigError(
                REQUIREMENTS,
                f"'{req}': local VMs install offline, from this machine's environment "
                f"or the run's wheelhouse; {_have(req)}, and it cannot be fetched into the "
                f"wheelhouse ({reason})",
                f"reach the package index from here (or fix the requirement), or install it here: `{fix}`",
            )
        )
    return out


def _download(lock: str, folder: Path) -> None:
    part = folder.with_name(folder.name + f".{os.getpid()}.part")
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    (part / LOCK_FILE).write_text(lock)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--require-hashes",
            "-r",
            str(part / LOCK_FILE),
            "-d",
            str(part),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        shutil.rmtree(part, ignore_errors=True)
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        raise ConfigError(
            REQUIREMENTS,
            f"the wheels of the local VMs' wheelhouse cannot be downloaded:\n{tail}",
            "reach the package index from here, or install the requirements here",
        )
    (part / LOCK_FILE).unlink()
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(part, folder)


def fetch(missing: list[str]) -> tuple[str, Path]:
    """Resolve ``missing`` for this interpreter (wheels only, hashed) and download its wheels
    into the user's cache (once per lock); (the lock, the folder)."""
    lock = compile_lock(missing, here=True)
    folder = cache_dir("wheelhouse") / hashlib.sha256(lock.encode()).hexdigest()
    if not any(folder.glob("*.whl")):
        _download(lock, folder)
    return lock, folder


def pack_tar(wheels: list[Path], out_dir: Path, lock: str) -> Wheelhouse:
    """``wheels`` (sorted by name, equal names once) in one reproducible tar,
    ``out_dir/wheelhouse-<sha256>.tar``."""
    unique = sorted({w.name: w for w in wheels}.values(), key=lambda w: w.name)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for wheel in unique:
            tar_member(tar, wheel.name, wheel.read_bytes())
    data = raw.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"wheelhouse-{digest}.tar"
    path.write_bytes(data)
    return Wheelhouse(path=path, sha256=digest, size=len(data), lock=lock, files=[w.name for w in unique])


def build(missing: list[str], out_dir: Path) -> Wheelhouse:
    """The wheels of ``missing`` (:func:`fetch`) packed into ``out_dir/wheelhouse-<sha256>.tar``;
    ConfigError naming what cannot be fetched."""
    lock, folder = fetch(missing)
    return pack_tar(sorted(folder.glob("*.whl")), out_dir, lock)
