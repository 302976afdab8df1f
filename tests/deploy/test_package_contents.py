"""What the action packages carry: the actions and the event formats they parse, never
the local runtime behind `ephemera up`, and every Ephemera module an action imports.

The OpenWhisk zip and the Code Engine source share one copy step (``_copy_sources``),
so the layout-only zip (no third-party packages: quick to build) stands for both; the
slow tests in tests/ibm/ run the full packages the way each platform does.
"""

from __future__ import annotations

import ast
import zipfile

from ephemera.deploy.package import build_openwhisk_zip

ACTION_MODULES = ("apply", "destroy", "reap", "status", "entry", "job", "marker_scan", "remote")


def _zip_names(tmp_path) -> set[str]:
    with zipfile.ZipFile(build_openwhisk_zip(tmp_path / "bare.zip", with_deps=False)) as zf:
        return set(zf.namelist())


def _module_file(module: str, names: set[str]) -> bool:
    base = module.replace(".", "/")
    return f"{base}.py" in names or f"{base}/__init__.py" in names


def test_the_runtime_stays_out_and_the_event_formats_go_in(tmp_path):
    names = _zip_names(tmp_path)
    assert {f"ephemera/actions/{m}.py" for m in ACTION_MODULES} <= names
    assert {"ephemera/events/formats.py", "ephemera/events/cloud_events.py", "ephemera/events/fields.py"} <= names
    shipped_elsewhere = ("ephemera/runtime/", "ephemera/cli/", "ephemera/workloads/", "lithops_bridge/")
    assert not sorted(n for n in names if n.startswith(shipped_elsewhere))
    # the stacks' specs go in (an apply checks the run against its stack's), their .tf files stay with the engine;
    # so do the image stacks' (the reaper destroys a dead image build's builder workspace with its spec)
    assert {n for n in names if n.startswith("ephemera/stacks/")} == {
        "ephemera/stacks/local/stack.toml",
        "ephemera/stacks/ibm-vpc-gpu/stack.toml",
        "ephemera/stacks/aws-ec2-gpu/stack.toml",
        "ephemera/stacks/ibm-image-builder/stack.toml",
        "ephemera/stacks/ibm-image/stack.toml",
        "ephemera/stacks/aws-image-builder/stack.toml",
        "ephemera/stacks/aws-image/stack.toml",
    }


def test_every_ephemera_import_in_the_package_resolves_inside_it(tmp_path):
    """Leaving the runtime out must not leave an action without a module it imports, at
    the top of a file or inside a function (a cold start would fail only when that path runs)."""
    tmp = tmp_path / "unpacked"
    with zipfile.ZipFile(build_openwhisk_zip(tmp_path / "bare.zip", with_deps=False)) as zf:
        zf.extractall(tmp)
        names = set(zf.namelist())
    missing = []
    for name in sorted(n for n in names if n.startswith("ephemera/") and n.endswith(".py")):
        for node in ast.walk(ast.parse((tmp / name).read_text())):
            modules = []
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module] + [
                    f"{node.module}.{a.name}" for a in node.names if _module_file(f"{node.module}.{a.name}", names)
                ]
            missing += [
                f"{name}:{node.lineno} {m}" for m in modules if m.split(".")[0] == "ephemera" and not _module_file(m, names)
            ]
    assert not missing, missing
