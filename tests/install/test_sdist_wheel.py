"""The tree as a clone gives it (no links), built the way an index user gets it:
an sdist, then a wheel from the unpacked sdist. The wheel's only top-level names are
``ephemera`` and ``lithops_bridge``, each module appears once, and the stacks from
``terraform/`` travel as ``ephemera/stacks`` package data."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # two setuptools builds

REPO = Path(__file__).resolve().parents[2]


def _build(kind: str, src: Path, out: Path) -> Path:
    """Build as an index user's installer does: in an isolated environment holding what
    ``[build-system] requires`` names (uv's PEP 517 frontend), never this venv's setuptools
    (the old one the sdist-only SDKs need)."""
    out.mkdir(parents=True, exist_ok=True)
    flag = {"build_sdist": "--sdist", "build_wheel": "--wheel"}[kind]
    done = subprocess.run(
        [sys.executable, "-m", "uv", "build", flag, "--out-dir", str(out), str(src)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = [p for p in out.iterdir() if p.name.endswith(".tar.gz" if kind == "build_sdist" else ".whl")]
    return built


def test_an_sdist_builds_a_wheel_with_one_name_per_module_and_the_stacks(tmp_path):
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"  # what a clone of the tree as it is now holds: the tracked files
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, tracked):
        if (REPO / rel).is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            (clone / rel).write_bytes((REPO / rel).read_bytes())
    assert not [p for p in clone.rglob("*") if p.is_symlink()]

    sdist = _build("build_sdist", clone, tmp_path / "dist")
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    (root,) = (tmp_path / "unpacked").iterdir()
    wheel = _build("build_wheel", root, tmp_path / "wheel")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()

    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {"ephemera", "lithops_bridge"}
    assert len(names) == len(set(names))
    modules = {p.relative_to(clone).as_posix() for top in ("ephemera", "lithops_bridge") for p in (clone / top).rglob("*.py")}
    assert {n for n in names if n.endswith(".py")} == modules
    stacks = {
        f"ephemera/stacks/{p.relative_to(clone / 'terraform').as_posix()}"
        for p in (clone / "terraform").rglob("*")
        if p.suffix in (".tf", ".tftpl") or p.name == "stack.toml"
    }
    assert {
        "ephemera/stacks/local/main.tf",
        "ephemera/stacks/ibm-vpc-gpu/modules/user-data/cloud-init.yaml.tftpl",
        "ephemera/stacks/ibm-vpc-gpu/stack.toml",
    } <= stacks
    assert {n for n in names if n.startswith("ephemera/stacks/")} == stacks
    templates = {p.relative_to(clone).as_posix() for p in (clone / "ephemera" / "cli" / "dashboard" / "templates").glob("*.html")}
    assert templates and templates <= set(names)
