"""Ephemera's wheel, built from this installation (a checkout with an editable install
here), carries every module under its one name and the stacks as package data, with no
link to follow; building it does not import the Lithops bridge (the core must not)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROBE = r"""
import json, sys
from ephemera.bundle.wheel import build_wheel
out = build_wheel(sys.argv[1])
print(json.dumps({"wheel": str(out), "bridge_imported": "lithops_bridge" in sys.modules}))
"""


def _build(tmp_path: Path) -> tuple[set[str], bool]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    with zipfile.ZipFile(found["wheel"]) as zf:
        return set(zf.namelist()), found["bridge_imported"]


def test_the_wheel_holds_each_module_once_and_the_stacks(tmp_path):
    names, _ = _build(tmp_path)
    modules = {
        p.relative_to(REPO).as_posix()
        for top in ("ephemera", "lithops_bridge")
        for p in (REPO / top).rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert {n for n in names if n.endswith(".py")} == modules
    stacks = {
        "ephemera/stacks/" + p.relative_to(REPO / "terraform").as_posix()
        for p in (REPO / "terraform").rglob("*")
        if (p.suffix in (".tf", ".tftpl") or p.name == "stack.toml") and ".terraform" not in p.parts
    }
    assert (
        stacks
        and {
            "ephemera/stacks/local/main.tf",
            "ephemera/stacks/ibm-vpc-gpu/main.tf",
            "ephemera/stacks/local/stack.toml",
            "ephemera/stacks/ibm-vpc-gpu/stack.toml",
        }
        <= stacks
    )
    assert {n for n in names if n.startswith("ephemera/stacks/")} == stacks
    assert not [n for n in names if n.split("/")[0] not in ("ephemera", "lithops_bridge") and ".dist-info/" not in n]


def test_building_the_wheel_does_not_import_the_bridge(tmp_path):
    """The layer contract: the core never imports lithops_bridge. The wheel packs the
    bridge's files, found by ``importlib.util.find_spec`` (which locates a package
    without running it), so the bridge is not in ``sys.modules`` afterwards."""
    names, bridge_imported = _build(tmp_path)
    assert {"lithops_bridge/__init__.py", "lithops_bridge/executor.py"} <= names
    assert bridge_imported is False
