"""The structure ARCHITECTURE.md describes holds: the layer contracts, one docstring per
module, modules a reader can hold, and only `ephemera` and `lithops_bridge` as
top-level import names."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("ephemera", "lithops_bridge")  # ephemera/ links actions/, triggers/, workloads/
MAX_MODULE_LINES = 400
UNINSTALLED_NAMES = ("actions", "triggers", "workloads")  # installed under ephemera.*


def source_files() -> list[Path]:
    files = []
    for top in SOURCE_DIRS:
        for path in sorted((REPO / top).rglob("*.py")):
            if "stacks" not in path.relative_to(REPO).parts:
                files.append(path)
    return files


def test_the_layer_contracts_hold():
    """import-linter checks the contracts of pyproject.toml: the core imports no upper
    layer and no lithops_bridge; the bridge imports only the core's storage and errors."""
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is a test dependency: install the 'test' extra"
    done = subprocess.run([lint, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_the_linked_packages_are_the_repository_folders():
    for name in UNINSTALLED_NAMES:
        link = REPO / "ephemera" / name
        assert link.is_symlink() and link.resolve() == (REPO / name).resolve(), f"ephemera/{name} must link to {name}/"


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_module_says_what_it_holds_and_stays_small(path):
    text = path.read_text()
    tree = ast.parse(text)
    assert ast.get_docstring(tree), f"{path.relative_to(REPO)} has no module docstring"
    lines = len(text.splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(REPO)} has {lines} lines; split it by concern"


def test_nothing_imports_the_repository_folders_by_their_top_level_names():
    """Installed, `actions`, `triggers` and `workloads` exist only as ephemera.*: an
    import by the bare name works from a checkout and breaks every installed copy."""
    offenders = []
    roots = source_files() + sorted((REPO / "tests").rglob("*.py")) + sorted((REPO / "bench").rglob("*.py"))
    for path in roots:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(REPO)}:{node.lineno} {n}" for n in names if n.split(".")[0] in UNINSTALLED_NAMES]
    assert not offenders, offenders
