"""`make test` relies on pytest-xdist's ``--dist loadgroup`` to run each ``xdist_group``
on one worker: the bridge's shared VMs start once, a module's venv is built once. When
the pair of pytest and pytest-xdist stops honouring the mark, nothing fails, the suite
only gets minutes slower; this test makes that visible. (pytest 9.2 keeps node ids where
pytest-xdist 3.8 cannot add the group, hence the pin in pyproject.toml.)"""

from __future__ import annotations

import os
import subprocess
import sys

TESTS = """
import os
import pytest

{mark}

@pytest.mark.parametrize("i", range(6))
def test_where(i):
    with open(os.path.join(os.environ["RAN_IN"], f"{{os.environ['PYTEST_XDIST_WORKER']}}-{{i}}"), "w"):
        pass
"""

HOOK = """
import pytest

@pytest.hookimpl(tryfirst=True)  # as tests/bridge/conftest.py does
def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.xdist_group("hooked"))
"""


def _workers(root, marked: bool) -> set[str]:
    out = root / "ran"
    out.mkdir()
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "test_grouped.py").write_text(TESTS.format(mark='pytestmark = pytest.mark.xdist_group("marked")' if marked else ""))
    if not marked:
        (root / "conftest.py").write_text(HOOK)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "3", "--dist", "loadgroup"]
    env = {**os.environ, "RAN_IN": str(out), "PYTEST_ADDOPTS": ""}
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ran = [p.name for p in out.iterdir() if p.name.startswith("gw")]
    assert len(ran) == 6, ran
    return {name.split("-")[0] for name in ran}


def test_a_module_marked_with_a_group_runs_on_one_worker(tmp_path):
    assert len(_workers(tmp_path, marked=True)) == 1


def test_a_group_added_by_a_conftest_hook_runs_on_one_worker(tmp_path):
    assert len(_workers(tmp_path, marked=False)) == 1
