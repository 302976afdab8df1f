"""Wheels of the packages published as source only, built here before anything installs them.

``ibm-schematics`` 1.1.0 and ``ibm-cos-sdk`` 2.x (with its ``-core`` and ``-s3transfer``
parts) are published as sdists whose ``setup.py`` needs ``setuptools<70``. A VM and a
deploy package must install wheels pinned by their hash and build nothing (a build
would fetch its build backend unhashed), so both get the wheels built once, here, in
a throwaway venv with ``--no-build-isolation``. The run bundle (:mod:`ephemera.bundle.lock`)
and the deploy packages (:mod:`ephemera.deploy.package`) share this one builder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from ephemera.errors import ConfigError, EphemeraError

COS_SDK = "ibm-cos-sdk>=2.13"  # the requirement specs of the source-only packages the cloud actions import
SCHEMATICS_SDK = "ibm-schematics==1.1.0"
SOURCE_ONLY_REQUIREMENTS = (COS_SDK, SCHEMATICS_SDK)
# published as source only: built into wheels before anything is installed
SDIST_ONLY = ("ibm-schematics", "ibm-cos-sdk", "ibm-cos-sdk-core", "ibm-cos-sdk-s3transfer")
BUILD_TOOLS = ("setuptools<70", "wheel")  # what the sdists' setup.py needs, without build isolation

Say = Callable[[str], None]


class PackageError(EphemeraError):
    code = "DEPLOY_PACKAGE_FAILED"


def _pip_failed(what: str, done: subprocess.CompletedProcess) -> PackageError:
    tail = "\n".join(line for line in (done.stderr or done.stdout).strip().splitlines() if "is ignored" not in line)[-1500:]
    return PackageError(f"{what} failed:\n{tail}")


def run_pip(cmd: Sequence[str], what: str) -> None:
    """Run a pip (or venv) command; PackageError with the tail of its output when it fails."""
    done = subprocess.run(list(cmd), capture_output=True, text=True)
    if done.returncode != 0:
        raise _pip_failed(what, done)


def wheel_project(wheel: Path) -> str:
    """The normalised project name of a wheel file."""
    return wheel.name.split("-")[0].lower().replace("_", "-")


def _uv() -> str | None:
    """uv, if this installation has it (:func:`ephemera.bundle.lock.find_uv`), else None."""
    from ephemera.bundle.lock import find_uv  # lock imports this module

    try:
        return find_uv()
    except ConfigError:
        return None


def build_venv(venv: Path) -> None:
    """A throwaway venv at ``venv`` holding pip and :data:`BUILD_TOOLS`. uv makes it in a
    second or two; ``python -m venv`` byte-compiles pip through ensurepip (15-25 s on a busy
    2-core machine), so it is the fallback when there is no uv or uv cannot get pip."""
    uv, env = _uv(), {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    if uv:
        made = subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], capture_output=True, env=env)
        if made.returncode == 0:
            install = [uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), "pip", *BUILD_TOOLS]
            made = subprocess.run(install, capture_output=True, env=env)
        if made.returncode == 0:
            return
        shutil.rmtree(venv, ignore_errors=True)
    run_pip([sys.executable, "-m", "venv", str(venv)], "creating the wheel-build venv")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    run_pip([*pip, "install", *BUILD_TOOLS], f"installing {' '.join(BUILD_TOOLS)}")


def build_sdist_wheels(wheel_dir: Path, say: Say = lambda _: None) -> list[Path]:
    """Wheels of the source-only requirements (pure Python, any platform) in ``wheel_dir``;
    built once, then reused."""
    wheel_dir = Path(wheel_dir)
    have = {wheel_project(w): w for w in wheel_dir.glob("*.whl")} if wheel_dir.is_dir() else {}
    if all(name in have for name in SDIST_ONLY):
        return [have[name] for name in SDIST_ONLY]
    wanted = list(SOURCE_ONLY_REQUIREMENTS)
    say(f"building wheels of the source-only packages ({', '.join(wanted)}) with {' and '.join(BUILD_TOOLS)}")
    with tempfile.TemporaryDirectory(prefix="ephemera-wheels-") as tmp:
        venv, out = Path(tmp) / "venv", Path(tmp) / "out"
        build_venv(venv)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
        # with their dependencies, so that ibm-cos-sdk's exact pins of its -core and -s3transfer parts are what gets built
        run_pip([*pip, "wheel", "--no-build-isolation", "-w", str(out), *wanted], "building the source-only packages into wheels")
        wheel_dir.mkdir(parents=True, exist_ok=True)
        built = []
        for wheel in sorted(out.glob("*.whl")):
            if wheel_project(wheel) in SDIST_ONLY:
                shutil.copy2(wheel, wheel_dir / wheel.name)
                built.append(wheel_dir / wheel.name)
    missing = set(SDIST_ONLY) - {wheel_project(w) for w in built}
    if missing:
        raise PackageError(f"no wheel was built for {', '.join(sorted(missing))}")
    return built
