"""`make test` relies on pytest-xdist's ``--dist loadgroup`` to run each ``xdist_group``
on one worker: the bridge's shared VMs start once, a module's venv is built once. When
the pair of pytest and pytest-xdist stops honouring the mark, nothing fails, the suite
only gets minutes slower; this test makes that visible. (pytest 9.2 keeps node ids where
pytest-xdist 3.8 cannot add the group, hence the pin in pyproject.toml.)

One inner ``pytest -n 3`` run carries both ways of grouping (a module's ``pytestmark`` and
a conftest hook); its twelve tests spread over the three workers when a group is ignored.
It loads pytest-xdist alone (no plugin autoloading): the pair under test, without every
other installed plugin's start-up in each of the four processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

TESTS = """
import os
import pytest

{mark}

@pytest.mark.parametrize("i", range(6))
def test_where(i):
    with open(os.path.join(os.environ["RAN_IN"], f"{{os.environ['PYTEST_XDIST_WORKER']}}-{name}-{{i}}"), "w"):
        pass
"""

HOOK = """
import pytest

@pytest.hookimpl(tryfirst=True)  # as tests/bridge/conftest.py does
def pytest_collection_modifyitems(items):
    for item in items:
        if item.module.__name__.endswith("test_hooked"):
            item.add_marker(pytest.mark.xdist_group("hooked"))
"""


@pytest.fixture(scope="module")
def workers(tmp_path_factory) -> dict[str, set[str]]:
    """module name -> the xdist workers its six tests ran on, from one ``pytest -n 3 --dist loadgroup``."""
    root = tmp_path_factory.mktemp("grouped")
    out = root / "ran"
    out.mkdir()
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "conftest.py").write_text(HOOK)
    marks = {"marked": 'pytestmark = pytest.mark.xdist_group("marked")', "hooked": ""}
    for name, mark in marks.items():
        (root / f"test_{name}.py").write_text(TESTS.format(mark=mark, name=name))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "xdist", "-n", "3", "--dist", "loadgroup"]
    env = {**os.environ, "RAN_IN": str(out), "PYTEST_ADDOPTS": "", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ran: dict[str, set[str]] = {name: set() for name in marks}
    for path in out.iterdir():
        worker, name, _ = path.name.split("-")
        ran[name].add(worker)
    assert len(list(out.iterdir())) == 6 * len(marks)
    return ran


def test_a_module_marked_with_a_group_runs_on_one_worker(workers):
    assert len(workers["marked"]) == 1


def test_a_group_added_by_a_conftest_hook_runs_on_one_worker(workers):
    assert len(workers["hooked"]) == 1
