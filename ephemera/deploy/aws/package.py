"""The Lambda ``.zip``: Ephemera's sources and every dependency at the archive's root.

Lambda's Python runtimes put the function's root (``/var/task``) on ``sys.path``, so
the layout is the ``ephemera`` package (what the cloud actions import, as for the
other targets: :data:`ephemera.deploy.package.LEFT_OUT`) beside the third-party
packages, installed for the function's runtime and instruction set (``python3.13`` on
``manylinux2014_x86_64`` or ``_aarch64``), wheels only. The extras come from the
config's storage and engine specs (the IBM packages, and the source-only ones built
into wheels first, only when one needs them); boto3 is the runtime's own. A zip uploaded directly
(``--zip-file``) may be at most 50 MB ("Deployment package (.zip file archive) size:
50 MB (zipped, when uploading through the Lambda API or SDKs)") and 250 MB unzipped.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Iterable

from ephemera.bundle.sdists import run_pip
from ephemera.deploy.package import (
    LEFT_OUT,
    PACKAGES,
    REPO,
    SDIST_ONLY,
    PackageError,
    Say,
    _project_of,
    action_requirements,
    build_sdist_wheels,
    size_line,
)

ZIP_LIMIT_BYTES = 50 * 1024 * 1024
UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
RUNTIME_EXTRAS = frozenset({"aws"})  # boto3: the Lambda Python runtimes' own
PLATFORMS = {
    "x86_64": ("manylinux_2_28_x86_64", "manylinux2014_x86_64"),
    "arm64": ("manylinux_2_28_aarch64", "manylinux2014_aarch64"),
}


def requirements(extras: Iterable[str]) -> tuple[str, ...]:
    """What the functions install: the core's and those of the config's ``extras``
    (:func:`ephemera.deploy.package.action_extras`), less what the runtime carries."""
    return action_requirements(set(extras) - RUNTIME_EXTRAS)


def build_lambda_zip(
    zip_path: Path,
    *,
    python: str = "3.13",
    architecture: str = "x86_64",
    extras: Iterable[str] = (),
    with_deps: bool = True,
    wheel_dir: Path | None = None,
    say: Say = lambda _: None,
) -> Path:
    """The function zip; ``with_deps=False`` packs the sources only (for tests of the layout:
    such a zip cannot run on Lambda)."""
    zip_path = Path(zip_path).resolve()
    with tempfile.TemporaryDirectory(prefix="ephemera-lambda-") as tmp:
        work = Path(tmp) / "task"
        for name in PACKAGES:
            shutil.copytree(REPO / name, work / name, ignore=shutil.ignore_patterns(*LEFT_OUT))
        if with_deps:
            wheels = Path(wheel_dir) if wheel_dir else Path(tmp) / "wheels"
            needed = requirements(extras)
            if any(_project_of(r) in SDIST_ONLY for r in needed):
                build_sdist_wheels(wheels, say)
            platforms = [arg for p in PLATFORMS[architecture] for arg in ("--platform", p)]
            run_pip(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "--disable-pip-version-check",
                    "-q",
                    "install",
                    "--target",
                    str(work),
                    "--no-compile",
                    "--python-version",
                    python,
                    "--implementation",
                    "cp",
                    *platforms,
                    "--only-binary=:all:",
                    "--find-links",
                    str(wheels),
                    *needed,
                ],
                f"installing the functions' requirements for CPython {python} on {architecture}",
            )
            shutil.rmtree(work / "bin", ignore_errors=True)
        unzipped = sum(p.stat().st_size for p in work.rglob("*") if p.is_file())
        zip_path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(work.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    zf.write(path, path.relative_to(work).as_posix())
    size = zip_path.stat().st_size
    say(size_line(f"function zip {zip_path.name}", size, ZIP_LIMIT_BYTES))
    if size > ZIP_LIMIT_BYTES or unzipped > UNZIPPED_LIMIT_BYTES:
        raise PackageError(
            size_line(
                f"the function zip {zip_path} is too large ({unzipped / 2**20:.0f} MB unzipped, limit 250 MB)",
                size,
                ZIP_LIMIT_BYTES,
            )
        )
    return zip_path


__all__ = ["SDIST_ONLY", "build_lambda_zip", "requirements"]
