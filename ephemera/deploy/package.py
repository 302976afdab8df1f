"""Build the deployable code: an OpenWhisk ``python:3.11`` action zip and a Code Engine bundle.

The OpenWhisk zip holds ``__main__.py`` (the entry point, ``main(params)``), the
``ephemera`` (with ``ephemera.actions`` and ``ephemera.triggers``) and ``lithops_bridge`` packages, and a
``virtualenv/`` folder (``bin/activate_this.py`` + ``lib/python3.11/site-packages``)
with the third-party requirements, which the python:3.11 runtime activates before
loading the action. One zip serves every action: the entry point dispatches on the
action's name (``__OW_ACTION_NAME``), ``EPHEMERA_ACTION`` (Code Engine), or an
``ephemera_action`` parameter.

The Code Engine bundle is the same source folder with a ``requirements.txt`` (built by
``ibmcloud ce fn create --build-source``), plus a ``Dockerfile`` whose command runs
:mod:`ephemera.deploy.job` for jobs (COS subscriptions can start jobs, not functions).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from ephemera.config import ACTIONS
from ephemera.errors import EphemeraError

REPO = Path(__file__).resolve().parents[2]
# ephemera/ carries ephemera.actions and ephemera.triggers (linked into it); the sample
# workloads, the stacks and the CLI stay out of the cloud actions
PACKAGES = ("ephemera", "lithops_bridge")
LEFT_OUT = ("__pycache__", "*.pyc", "tests", "stacks", "workloads")
PYTHON_VERSION = "3.11"
# What the actions need at run time in the cloud (no local-only packages such as watchdog).
REQUIREMENTS = (
    "pyyaml>=6",
    "croniter>=2",
    "cloudpickle>=3",
    "pydantic>=2.7",
    "ibm-cos-sdk>=2.13",
    "ibm-cloud-sdk-core>=3.16",
    "ibm-schematics==1.1.0",
)

ENTRYPOINT = '''"""Ephemera action entry point (OpenWhisk python:3.11 and Code Engine functions)."""

import importlib
import json
import os

ACTIONS = {actions!r}


def _action_name(params):
    name = params.get("ephemera_action") or os.environ.get("EPHEMERA_ACTION") or os.environ.get("__OW_ACTION_NAME", "")
    return str(name).rstrip("/").rpartition("/")[2]


def main(params):
    params = dict(params or {{}})
    name = _action_name(params)
    params.pop("ephemera_action", None)
    if name not in ACTIONS:
        return {{"error": {{"code": "PARAM_INVALID", "message": "unknown action '%s'; deploy it as one of %s" % (name, ", ".join(ACTIONS))}}}}
    if "config" not in params and os.environ.get("EPHEMERA_CONFIG_JSON"):
        params["config"] = json.loads(os.environ["EPHEMERA_CONFIG_JSON"])
    return importlib.import_module("ephemera.actions." + name).main(params)
'''

ACTIVATE_THIS = '''"""Put this virtualenv's site-packages first on sys.path (run by the OpenWhisk runtime)."""
import os
import site
import sys

base = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
site_packages = os.path.join(base, "lib", "python%d.%d" % sys.version_info[:2], "site-packages")
before = list(sys.path)
site.addsitedir(site_packages)
sys.path[:] = [p for p in sys.path if p not in before] + before
sys.real_prefix = sys.prefix
sys.prefix = base
'''

DOCKERFILE = f'''# Ephemera job image for Code Engine (COS subscriptions start jobs, not functions).
FROM python:{PYTHON_VERSION}-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir setuptools"<70" wheel \\
 && pip install --no-cache-dir --no-build-isolation -r requirements.txt
COPY . .
CMD ["python", "-m", "ephemera.actions.job"]
'''


class PackageError(EphemeraError):
    code = "DEPLOY_PACKAGE_FAILED"


def _copy_sources(dest: Path) -> None:
    for name in PACKAGES:
        src = REPO / name
        if not src.is_dir():
            raise PackageError(f"package folder '{src}' is missing; run from an Ephemera checkout")
        shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns(*LEFT_OUT))
    (dest / "__main__.py").write_text(ENTRYPOINT.format(actions=ACTIONS))


def build_source_bundle(dest: Path) -> Path:
    """The Code Engine build source: the packages, ``__main__.py``, requirements and Dockerfile."""
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    _copy_sources(dest)
    (dest / "requirements.txt").write_text("\n".join(REQUIREMENTS) + "\n")
    (dest / "Dockerfile").write_text(DOCKERFILE)
    return dest


def build_openwhisk_zip(zip_path: Path, *, requirements: tuple[str, ...] | list[str] = REQUIREMENTS, work_dir: Path | None = None) -> Path:
    """The action zip; ``requirements=()`` leaves ``virtualenv/`` without third-party packages."""
    zip_path = Path(zip_path)
    work = Path(work_dir) if work_dir else zip_path.parent / (zip_path.stem + ".build")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    _copy_sources(work)
    venv = work / "virtualenv"
    site_packages = venv / "lib" / f"python{PYTHON_VERSION}" / "site-packages"
    site_packages.mkdir(parents=True)
    (venv / "bin").mkdir()
    (venv / "bin" / "activate_this.py").write_text(ACTIVATE_THIS)
    if requirements:
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(site_packages),
               "--python-version", PYTHON_VERSION, "--only-binary=:all:", "--platform", "manylinux2014_x86_64", *requirements]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            raise PackageError(f"pip could not install the action's requirements:\n{tail}\n(build without them with --no-deps)")
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(work.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, path.relative_to(work).as_posix())
    shutil.rmtree(work)
    return zip_path
