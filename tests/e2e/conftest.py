"""One run of the demo (`make demo`'s `run_demo`, two local VMs) shared by the tests that
read it: the flow's records (tests/e2e/test_demo_flow.py), the command's report and logs,
and the dashboard in a browser (tests/e2e/test_dashboard_browser.py). Each of them once ran
the same flow of its own (~100 s each on a loaded 2-core machine); they only read the run.
The tests that use it carry one ``xdist_group``, so `make test` (``--dist loadgroup``)
runs the demo once."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import pytest

DEMO_GROUP = "e2e-demo-run"
DEMO_WORKERS = 2  # VMs of the shared run: two, so the multi-VM flow (fan-out, teardown of both) is the one read


@dataclass
class DemoRun:
    home: Path  # the demo's home (config.yaml, storage, runs)
    code: int  # run_demo's exit code
    out: str  # what it printed
    agent_pids: set  # every agent pid that heartbeated for the run


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which turns the mark into the group
def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if "tests/e2e/" in item.nodeid and "demo_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group(DEMO_GROUP))


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> DemoRun:
    from ephemera.cli.demo import run_demo
    from ephemera.context import Context
    from tests.helpers import heartbeat_pids

    home = tmp_path_factory.mktemp("demo-run") / "demo"
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EPHEMERA_HOME", str(home.parent / "user-home"))  # run_demo repoints it; restored after
        mp.delenv("EPHEMERA_CONFIG_FILE", raising=False)
        with contextlib.redirect_stdout(out):
            code = run_demo(home=str(home), timeout=600, worker_count=DEMO_WORKERS)  # a safety net, not a goal
    return DemoRun(home=home, code=code, out=out.getvalue(), agent_pids=heartbeat_pids(Context(str(home / "config.yaml"))))
