"""The cloud VMs' wheelhouse: every wheel of a bundle's ``requirements.lock``, fetched at pack time.

A cloud VM installs the bundle's hashed lock (:mod:`ephemera.bundle.lock`). Without a
wheelhouse it fetches those files from the public index at every boot; with one it
installs them from the state bucket (``--no-index --find-links``): in-region, and immune
to an index outage or a yanked release. The lock is universal (every platform, CPython
from ``MIN_PYTHON`` on), so the wheels are chosen here for the VMs' platform
(:data:`VM_PLATFORMS`: glibc x86_64, the stacks' images) and each CPython of
:data:`VM_PYTHONS`: per target, the lock's entries whose markers hold there are
downloaded with ``pip download --only-binary :all: --platform ... --python-version ...
--require-hashes --no-deps``, then every file is checked again against the lock's
hashes. The source-only packages' wheels built here (:mod:`ephemera.bundle.sdists`) go
in too. The tar is reproducible (:func:`ephemera.bundle.wheelhouse.pack_tar`), so equal
locks give an equal tar, stored once per content hash. Downloads are cached per lock and
target in the user's cache.

What the VM trusts is the lock (inside the hash-checked bundle), never the tar: whoever
can write the bucket and swaps a wheel (recomputing the tar's hash) is refused by the
VM's own per-wheel check and by the installer's ``--require-hashes``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from ephemera.bundle.lock import cache_dir
from ephemera.bundle.sdists import wheel_project
from ephemera.bundle.wheelhouse import Wheelhouse, pack_tar
from ephemera.errors import ConfigError

# The CPythons of the stacks' stock images: Ubuntu 22.04 ships 3.10, Ubuntu 24.04 (and the
# AWS DLAMI base on it) 3.12. A VM whose Python is not one of these is told so at boot.
VM_PYTHONS = ("3.10", "3.12")
# glibc 2.35 (Ubuntu 22.04, the older image) on x86_64, and every older manylinux tag: pip
# widens only the legacy aliases (manylinux2014 -> 2010, 1) by itself
VM_GLIBC = 35
VM_PLATFORMS = tuple(f"manylinux_2_{minor}_x86_64" for minor in range(VM_GLIBC, 4, -1)) + ("manylinux2014_x86_64",)
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")
FIELD = "workload.requirements"


def lock_entries(lock: str) -> list[tuple[str, list[str]]]:
    """The lock's entries: (requirement with its marker, its pinned SHA-256s)."""
    entries = []
    for block in re.split(r"\n(?=\S)", lock.replace("\\\n", " ")):
        head = block.split(" --hash=", 1)[0].strip()
        if head and not head.startswith(("-", "#")):
            entries.append((head, _HASH.findall(block)))
    return entries


def target_env(python: str) -> dict[str, str]:
    """The marker environment of CPython ``python`` (``3.12``) on a glibc x86_64 Linux VM."""
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "implementation_name": "cpython",
        "implementation_version": f"{python}.0",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "os_name": "posix",
    }


def target_lock(lock: str, python: str, skip: set[str]) -> str:
    """The lock's entries a VM with CPython ``python`` installs, markers dropped (pip would
    judge them for this interpreter), leaving out the projects in ``skip`` (built here)."""
    from packaging.requirements import Requirement  # only where a bundle is packed

    env = target_env(python)
    out = []
    for head, hashes in lock_entries(lock):
        req = Requirement(head)
        name = req.name.lower().replace("_", "-").replace(".", "-")
        if name in skip or (req.marker is not None and not req.marker.evaluate(env)):
            continue
        out.append(f"{req.name}{req.specifier} " + " ".join(f"--hash=sha256:{h}" for h in hashes))
    return "".join(line + "\n" for line in out)


def _download(lock: str, python: str, folder: Path) -> None:
    part = folder.with_name(f"{folder.name}.{os.getpid()}.part")
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    (part / "lock.txt").write_text(lock)
    abi = "cp" + python.replace(".", "")
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input", "--quiet"]
    cmd += ["--no-deps", "--only-binary", ":all:", "--python-version", python]
    cmd += [arg for platform in VM_PLATFORMS for arg in ("--platform", platform)]
    cmd += ["--implementation", "cp", "--abi", abi, "--require-hashes", "-r", str(part / "lock.txt"), "-d", str(part)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        shutil.rmtree(part, ignore_errors=True)
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        raise ConfigError(
            FIELD,
            f"the wheels of the cloud VMs' wheelhouse (CPython {python}, glibc 2.{VM_GLIBC} x86_64) cannot be downloaded:\n{tail}",
            "reach the package index from here, and require packages that publish wheels for Linux x86_64",
        )
    (part / "lock.txt").unlink()
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(part, folder)


def fetch_target(lock: str, python: str, skip: set[str]) -> list[Path]:
    """The wheels of ``lock`` for CPython ``python`` on the VMs' platform, from the user's
    cache or downloaded now; each checked against the lock's hashes."""
    text = target_lock(lock, python, skip)
    if not text:
        return []
    key = hashlib.sha256(f"{VM_PLATFORMS}\n{python}\n{text}".encode()).hexdigest()
    folder = cache_dir("vm-wheelhouse") / key
    if not any(folder.glob("*.whl")):
        _download(text, python, folder)
    return sorted(folder.glob("*.whl"))


def check_pinned(wheels: Sequence[Path], lock: str) -> None:
    """ConfigError unless every wheel's SHA-256 is one the lock pins."""
    pinned = set(_HASH.findall(lock))
    for wheel in wheels:
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest not in pinned:
            raise ConfigError(
                FIELD,
                f"wheel {wheel.name} has SHA-256 {digest}, which the bundle's lock does not pin",
                f"clear the cache folder {wheel.parent} and pack again",
            )


def build(lock: str, built: Sequence[Path], out_dir: Path, pythons: Sequence[str] = VM_PYTHONS) -> Wheelhouse:
    """The cloud VMs' wheelhouse of ``lock`` (its text) for ``pythons``, with the locally
    ``built`` wheels of the source-only packages, in ``out_dir/wheelhouse-<sha256>.tar``."""
    skip = {wheel_project(w) for w in built}
    wheels = [w for python in pythons for w in fetch_target(lock, python, skip)] + list(built)
    check_pinned(wheels, lock)
    return pack_tar(wheels, out_dir, lock)
