"""A backend owns its knowledge: no storage backend or engine name is compared as a
string, or used to pick a config section, outside that backend's folder and the
registries. Code asks the backend's spec instead (``storage_spec(name).vm_variables``,
``engine_spec(name).one_workspace_per_config``, ...)."""

from __future__ import annotations

import ast
import os
from pathlib import Path

from ephemera.engines import ENGINES
from ephemera.storage import BACKENDS

REPO = Path(__file__).resolve().parents[1]
# the installed packages' sources; ephemera/actions, /triggers, /workloads link to the top-level folders
SOURCE_DIRS = ("ephemera", "lithops_bridge", "actions", "triggers", "workloads")
REGISTRIES = ("ephemera/storage/__init__.py", "ephemera/engines/__init__.py")
LOOKUPS = ("get", "pop", "setdefault")  # dict methods whose first argument picks an entry


def _strings(node: ast.AST) -> list[str]:
    """String constants of a node, or of the items of a tuple/list/set literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [s for elt in node.elts for s in _strings(elt)]
    return []


def name_uses(source: str, names: set[str]) -> list[tuple[int, str]]:
    """(line, name) of every comparison with, or lookup by, one of ``names`` as a string literal."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            candidates = [s for side in (node.left, *node.comparators) for s in _strings(side)]
        elif isinstance(node, ast.Subscript):
            candidates = _strings(node.slice) if isinstance(node.slice, ast.Constant) else []
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in LOOKUPS and node.args:
            candidates = _strings(node.args[0]) if isinstance(node.args[0], ast.Constant) else []
        elif isinstance(node, ast.MatchValue):
            candidates = _strings(node.value)
        else:
            continue
        found += [(node.lineno, s) for s in candidates if s in names]
    return found


def _sources() -> list[Path]:
    """Every source file once: the links inside ephemera/ are not followed (their targets are listed)."""
    files = []
    for top in SOURCE_DIRS:
        for folder, _dirs, names in os.walk(REPO / top, followlinks=False):
            files += [Path(folder) / n for n in sorted(names) if n.endswith(".py")]
    return files


def _owner_folders() -> dict[str, str]:
    folders = {name: f"ephemera/storage/{name}/" for name in BACKENDS}
    folders.update({name: f"ephemera/engines/{name}/" for name in ENGINES})
    return folders


def test_the_scanner_finds_each_kind_of_name_check():
    source = '''
if config["storage"]["backend"] == "aws_s3":
    region = config["schematics"]["region"]
ok = name in ("localhost", "other")
cos = config.get("ibm_cos")
match engine:
    case "terraform":
        pass
fine = {"backend": "localhost"}  # building a config names a backend: not a question
'''
    assert sorted(name_uses(source, {"aws_s3", "schematics", "localhost", "ibm_cos", "terraform"})) == [
        (2, "aws_s3"),
        (3, "schematics"),
        (4, "localhost"),
        (5, "ibm_cos"),
        (7, "terraform"),
    ]


def test_no_backend_or_engine_name_is_compared_outside_its_folder():
    owners = _owner_folders()
    files = _sources()
    assert len(files) > 100, "the scan found too few sources to mean anything"
    offences = []
    for path in files:
        rel = path.relative_to(REPO).as_posix()
        if rel in REGISTRIES:
            continue
        for line, name in name_uses(path.read_text(), set(owners)):
            if not rel.startswith(owners[name]):
                offences.append(f"{rel}:{line}: '{name}'")
    assert offences == [], "ask the backend's or engine's spec instead of naming it:\n" + "\n".join(offences)
