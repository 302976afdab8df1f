"""A small version of bench/load.py (the full 100 runs / 1,000 writes is the bench):
10 runs over 10 workspaces with alarms for the same second, and 100 object writes of
which 10 are markers, under `ephemera up`'s runtime. Every run reaches DESTROYED, no
event is lost or handled twice, no agent is left. Latencies are printed, never
asserted. And a smaller load on a busy machine (CPU burners, one per core): every run
still ends DESTROYED (issue 16, finding 19; `bench/load.py --runs 100 --busy 2` is the
full version)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

# load: 10 runs and 100 writes; 12 runs beside CPU burners. run_load waits for every run to end, up to
# its timeout (a safety net); pytest's budget is above it
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_load", ROOT / "bench" / "load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_load"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_ten_runs_and_a_burst_of_writes(home, capsys):
    bench = load_bench()
    rep = bench.run_load(runs=10, writes=100, home=home / "load", max_concurrent=4, lead=2.0, sleep=1.0, timeout=1200)
    assert rep.destroyed == 10
    assert set(rep.alarms_handled) == {f"alarm-{i:03d}" for i in range(10)}
    assert all(count == 1 for count in rep.alarms_handled.values()), rep.alarms_handled
    assert len(rep.markers_handled) == 10 and all(count == 1 for count in rep.markers_handled.values()), rep.markers_handled
    assert rep.lost == 0 and rep.duplicates == 0 and rep.leaked_agents == 0
    assert len(rep.write_latency) == 10 and len(rep.alarm_lateness) == 10
    with capsys.disabled():
        bench.print_report(rep)


def test_every_run_ends_destroyed_on_a_busy_machine(home, capsys):
    """The load that once left a run DESTROY_FAILED (not retryable) because an agent was
    still exiting after SIGKILL: now the stop waits for it, and a failed destroy is retried."""
    import os

    bench = load_bench()
    burners = os.cpu_count() or 2
    rep = bench.run_load(
        runs=12, writes=24, home=home / "busy", max_concurrent=4, lead=2.0, sleep=1.0, timeout=1200, busy=burners
    )
    with capsys.disabled():
        print(f"\nwith {burners} CPU burners:", end="")
        bench.print_report(rep)
    assert rep.destroyed == 12 and not rep.not_destroyed, rep.not_destroyed
    assert rep.lost == 0 and rep.duplicates == 0 and rep.leaked_agents == 0
