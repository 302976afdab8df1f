"""The floors of the core hold: no circle between ephemera's rooms, the config importable
without any plugin, config validation building no plugin's client, and the Lithops
bridge's executor handed in rather than imported back.

The import graph is grimp's (the library import-linter runs on). Imports under
``if TYPE_CHECKING:`` are left out, as the linter leaves them out: they never run, and
they are how a lower floor names an upper floor's type in an annotation.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

REPO = Path(__file__).resolve().parents[1]


def _floor_exceptions() -> set[tuple[str, str]]:
    """The imports the floors contract ignores (pyproject.toml), as (importer, imported)."""
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    floors = next(c for c in contracts if c["type"] == "layers" and c["containers"] == ["ephemera"])
    pairs = (line.split("->") for line in floors.get("ignore_imports", []))
    return {(importer.strip(), imported.strip()) for importer, imported in pairs}


def room_graph(
    graph: grimp.ImportGraph, package: str, skip: set[tuple[str, str]] = frozenset()
) -> dict[tuple[str, str], list[str]]:
    """(room, room) -> the module imports behind it, for the direct subpackages/modules of ``package``."""

    def room(module: str) -> str | None:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 and parts[0] == package else None

    edges: dict[tuple[str, str], list[str]] = {}
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            a, b = room(importer), room(imported)
            if a and b and a != b and (importer, imported) not in skip:
                edges.setdefault((a, b), []).append(f"{importer} -> {imported}")
    return edges


def cycles(edges: dict[tuple[str, str], list[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one room (Tarjan), each sorted."""
    nodes = sorted({n for edge in edges for n in edge})
    succ = {n: sorted(b for (a, b) in edges if a == n) for n in nodes}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for n in nodes:
        if n not in index:
            visit(n)
    return found


def describe(group: list[str], edges: dict[tuple[str, str], list[str]]) -> str:
    lines = [f"circle between {', '.join(group)}:"]
    for (a, b), imports in sorted(edges.items()):
        if a in group and b in group:
            lines.append(f"  {a} -> {b}: {'; '.join(imports[:4])}{' ...' if len(imports) > 4 else ''}")
    return "\n".join(lines)


def test_no_circle_between_ephemeras_rooms():
    graph = grimp.build_graph("ephemera", include_external_packages=False, exclude_type_checking_imports=True)
    edges = room_graph(graph, "ephemera", _floor_exceptions())
    found = cycles(edges)
    assert not found, "\n".join(describe(group, edges) for group in found)


def test_the_circle_finder_names_a_circle_and_its_edges():
    """The check above can fail: a throwaway graph with a circle through three rooms."""
    graph = grimp.ImportGraph()
    for module in ("pkg", "pkg.a", "pkg.b.x", "pkg.c", "pkg.d"):
        graph.add_module(module)
    graph.add_import(importer="pkg.a", imported="pkg.b.x")
    graph.add_import(importer="pkg.b.x", imported="pkg.c")
    graph.add_import(importer="pkg.c", imported="pkg.a")
    graph.add_import(importer="pkg.d", imported="pkg.a")
    edges = room_graph(graph, "pkg")
    found = cycles(edges)
    assert found == [["a", "b", "c"]]
    text = describe(found[0], edges)
    assert "b -> c: pkg.b.x -> pkg.c" in text and "d ->" not in text
    assert cycles(room_graph(graph, "pkg", {("pkg.c", "pkg.a")})) == []


def _fresh(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


PLUGIN_FOLDERS = (
    "ephemera.storage.localhost",
    "ephemera.storage.aws_s3",
    "ephemera.storage.ibm_cos",
    "ephemera.engines.terraform",
    "ephemera.engines.schematics",
)
SDKS = ("boto3", "botocore", "ibm_boto3", "ibm_botocore", "ibm_schematics", "ibm_cloud_sdk_core")


def test_the_config_value_class_imports_no_plugin_and_no_composition_root():
    loaded = _fresh(
        "import json, sys; import ephemera.config, ephemera.config.deploy_targets; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('ephemera'))))"
    )
    assert not [m for m in loaded if m.startswith(PLUGIN_FOLDERS)], loaded
    assert not [m for m in loaded if m.startswith(("ephemera.assembly", "ephemera.engines", "ephemera.deploy"))], loaded


def test_validating_a_config_builds_no_plugin_client_and_imports_no_sdk(tmp_path):
    """Validation reads the plugins' settings models; it builds nothing: no backend or
    engine client module, no cloud SDK, whichever backend the config names."""
    config = {
        "home": str(tmp_path),
        "storage": {"backend": "aws_s3", "bucket": "floors-state"},
        "aws_s3": {"region": "eu-west-1", "access_key_id": "AKEXAMPLEFLOORS", "secret_access_key": "s" * 40},
    }
    loaded = _fresh(
        "import json, sys; from ephemera.assembly import load_config; "
        f"load_config(json.loads({json.dumps(json.dumps(config))})); "
        "print(json.dumps(sorted(sys.modules)))"
    )
    clients = [m for m in loaded if m.startswith(PLUGIN_FOLDERS) and m.rsplit(".", 1)[1] in ("backend", "engine")]
    assert clients == [], clients
    assert not [m for m in loaded if m.split(".")[0] in SDKS]


def test_the_composition_root_parses_a_raw_config_before_building_its_storage(tmp_path):
    """``ephemera.assembly.get_storage`` takes a config source and parses it first (a bad
    key is a ConfigError naming it, before anything is built); ``ephemera.storage.get_storage``
    takes the parsed ``Config``, and both reach the same buckets."""
    from ephemera import storage
    from ephemera.assembly import get_storage, load_config
    from ephemera.errors import ConfigError

    raw = {"home": str(tmp_path), "storage": {"bucket": "floors-state"}, "localhost": {"root": str(tmp_path / "b")}}
    get_storage(raw).create_bucket("floors-state")
    get_storage(raw).put("floors-state", "k", b"v")
    assert storage.get_storage(load_config(raw)).get("floors-state", "k") == b"v"
    with pytest.raises(ConfigError) as caught:
        get_storage({**raw, "localhost": {"root": str(tmp_path / "c"), "rooot": "x"}})
    assert "localhost.rooot" in str(caught.value)
    assert not (tmp_path / "c").exists()


def test_the_bridges_futures_never_import_the_executor():
    """futures <-> executor was a circle: the executor now hands its class to FuturesList."""
    graph = grimp.build_graph("lithops_bridge", include_external_packages=False, exclude_type_checking_imports=True)
    assert not graph.find_modules_directly_imported_by("lithops_bridge.futures") & {"lithops_bridge.executor"}
    assert "lithops_bridge.futures" in graph.find_modules_directly_imported_by("lithops_bridge.executor")


def test_a_futures_list_without_an_executor_runs_its_next_job_on_a_new_one(tmp_path, monkeypatch):
    """Lithops: a FuturesList that came without an executor (``wait()``'s ``done``) makes a
    new FunctionExecutor for ``map``; the bridge's executor is handed in, not imported."""
    for var in ("LITHOPS_CONFIG", "LITHOPS_CONFIG_FILE", "EPHEMERA_CONFIG_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "userhome"))
    monkeypatch.setenv("EPHEMERA_HOME", str(tmp_path / "ephemera-home"))
    monkeypatch.chdir(tmp_path)
    import lithops_bridge
    from tests.bridge import funcs

    with lithops_bridge.FunctionExecutor() as fexec:
        done, not_done = lithops_bridge.wait(fexec.map(funcs.square, [1, 2]))
        assert not not_done and done.executor is None
        chained = done.map(funcs.double)
        assert isinstance(chained.executor, lithops_bridge.FunctionExecutor) and chained.executor is not fexec
        assert chained.get_result() == [2, 8]


def function_level_imports(path: Path) -> list[tuple[int, bool]]:
    """(line, has a comment) of every import inside a function of ``path``."""
    text = path.read_text()
    lines = text.splitlines()
    found: dict[int, bool] = {}
    for fn in ast.walk(ast.parse(text)):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    found[node.lineno] = "#" in lines[node.end_lineno - 1]
    return sorted(found.items())


UNCOMMENTED_RATCHET = json.loads((REPO / "tests" / "function_imports_ratchet.json").read_text())


def test_every_function_level_import_says_why():
    """An import inside a function is there for a lazy cloud SDK or a cold start, and its
    comment says which; the rest belong at module level. The files still holding
    uncommented ones are counted in tests/function_imports_ratchet.json: a count may only
    go down (lower it, or drop the file, when you move or explain one)."""
    problems = []
    counts = {}
    for top in ("ephemera", "lithops_bridge"):
        for path in sorted((REPO / top).rglob("*.py")):
            rel = str(path.relative_to(REPO))
            bare = [line for line, commented in function_level_imports(path) if not commented]
            counts[rel] = len(bare)
            allowed = UNCOMMENTED_RATCHET["files"].get(rel, 0)
            if len(bare) > allowed:
                problems.append(
                    f"{rel}: {len(bare)} uncommented function-level imports (lines {bare}), the ratchet allows {allowed}"
                )
    stale = {rel: counts.get(rel, 0) for rel, n in UNCOMMENTED_RATCHET["files"].items() if counts.get(rel, 0) < n}
    assert not problems, "\n".join(problems)
    assert not stale, f"fewer uncommented imports than the ratchet counts: lower it to {stale}"


def test_the_key_table_block_written_under_the_old_module_path_is_found_and_renamed(tmp_path):
    """The page's generated block was marked with `python -m ephemera.config.docs`; the table
    moved to the composition root. The old marker is still found, and a rewrite puts the
    new command in it."""
    from ephemera.assembly.docs import BEGIN, END, key_table, page_table, write_page

    old = "<!-- config keys: generated by `python -m ephemera.config.docs docs/configuration.md`; do not edit -->"
    page = tmp_path / "configuration.md"
    page.write_text(f"# Title\n\n{old}\n\n| stale |\n\n{END}\n\nafter\n")
    assert page_table(page.read_text()) == "| stale |\n"
    assert write_page(page) is True
    text = page.read_text()
    assert old not in text and BEGIN in text and text.endswith(f"{END}\n\nafter\n")
    assert page_table(text) == key_table()
