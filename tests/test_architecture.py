"""The structure ARCHITECTURE.md describes holds: the layer contracts, one docstring per
module, modules a reader can hold, one tree without links, and only `ephemera` and
`lithops_bridge` as top-level import names, each module under exactly one name."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("ephemera", "lithops_bridge")  # every module lives in one of these
MAX_MODULE_LINES = 400
UNINSTALLED_NAMES = ("actions", "triggers", "workloads", "runtime", "events")  # only ephemera.* names


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


def test_no_symlink_is_tracked():
    """An archive or a Windows checkout drops links: the tree must work without any."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "ls-files", "-s"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    links = [line.split("\t", 1)[1] for line in listed.splitlines() if line.startswith("120000 ")]
    assert not links, f"tracked symlinks: {links}"


def test_no_source_folder_is_a_link():
    links = [str(p.relative_to(REPO)) for top in (*SOURCE_DIRS, "terraform") for p in (REPO / top).rglob("*") if p.is_symlink()]
    assert not links, links


def test_the_package_list_names_every_package_folder():
    """pyproject.toml lists the packages (find cannot map terraform/ to ephemera.stacks):
    a package folder left off the list would be missing from every wheel."""
    tomllib = pytest.importorskip("tomllib")
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {".".join(p.parent.relative_to(REPO).parts) for top in SOURCE_DIRS for p in (REPO / top).rglob("__init__.py")}
    assert set(setuptools["packages"]) == folders | {"ephemera.stacks"}
    assert setuptools["package-dir"] == {"ephemera.stacks": "terraform"}


ONE_NAME_PROBE = r"""
import importlib, json, os, pkgutil, sys
import ephemera, lithops_bridge
failed = {}
for top in (ephemera, lithops_bridge):
    for info in pkgutil.walk_packages(top.__path__, top.__name__ + "."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue
        try:
            importlib.import_module(info.name)
        except Exception as exc:  # reported, not hidden
            failed[info.name] = repr(exc)
shadows = {}
root, tops = sys.argv[1], sys.argv[2:]
for name in tops:
    try:
        module = importlib.import_module(name)
    except ImportError:
        continue
    inside = [m.name for m in pkgutil.iter_modules(list(getattr(module, "__path__", [])))]
    shadows[name] = [getattr(module, "__file__", None), inside]
files = {}
for name, module in list(sys.modules.items()):
    path = getattr(module, "__file__", None) and os.path.realpath(module.__file__)
    if path and path.startswith(root):
        files.setdefault(path, []).append(name)
print(json.dumps({"failed": failed, "shadows": shadows, "twice": {p: n for p, n in files.items() if len(n) > 1},
                  "origin": ephemera.__file__}))
"""


def test_every_module_has_one_name_from_the_repository_root():
    """From the repository root (the working directory first on sys.path, as with
    `python -m pytest`), every module of ephemera and lithops_bridge imports, and no
    file is loaded under a second name: the top-level `actions`, `triggers`,
    `workloads` and `terraform` folders hold no module, so `import triggers.formats`
    cannot give a second copy of ephemera.events.formats."""
    tops = sorted(
        p.name
        for p in REPO.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name not in (*SOURCE_DIRS, "tests", "bench")
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", ONE_NAME_PROBE, str(REPO.resolve()), *tops],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert not found["failed"], found["failed"]
    assert not found["twice"], f"files loaded under two names: {found['twice']}"
    assert {name: inside for name, (_file, inside) in found["shadows"].items() if inside} == {}, (
        "a top-level folder holds modules"
    )
    assert Path(found["origin"]).resolve() == (REPO / "ephemera" / "__init__.py").resolve()


def test_the_stacks_are_found_in_a_checkout():
    from ephemera.stack import STACKS_DIR

    assert STACKS_DIR.resolve() == (REPO / "terraform").resolve()
    assert (STACKS_DIR / "local" / "main.tf").is_file() and (STACKS_DIR / "ibm-vpc-gpu" / "main.tf").is_file()


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


def test_the_event_formats_import_statically_and_only_public_names():
    """ephemera.events is what the deployed actions parse with: no importlib indirection
    (static tools and the linter see every edge) and no private name imported across
    modules (the helpers the parsers share are public, in events/fields.py)."""
    offenders = []
    for path in sorted((REPO / "ephemera" / "events").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "importlib" for a in node.names):
                offenders.append(f"{path.name}:{node.lineno} imports importlib")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("importlib"):
                offenders.append(f"{path.name}:{node.lineno} imports from importlib")
            if isinstance(node, ast.ImportFrom) and any(a.name.startswith("_") for a in node.names if a.name != "__future__"):
                offenders.append(f"{path.name}:{node.lineno} imports a private name from {node.module}")
    assert not offenders, offenders
