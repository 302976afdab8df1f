"""A small version of bench/load.py (the full 100 runs / 1,000 writes is the bench):
10 runs over 10 workspaces with alarms for the same second, and 100 object writes of
which 10 are markers, under `ephemera up`'s runtime. Every run reaches DESTROYED, no
event is lost or handled twice, no agent is left. Latencies are printed, never
asserted."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # load: 10 runs and 100 writes

ROOT = Path(__file__).resolve().parents[2]


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_load", ROOT / "bench" / "load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_load"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_ten_runs_and_a_burst_of_writes(home, capsys):
    bench = load_bench()
    rep = bench.run_load(runs=10, writes=100, home=home / "load", max_concurrent=4, lead=2.0, sleep=1.0, timeout=600)
    assert rep.destroyed == 10
    assert set(rep.alarms_handled) == {f"alarm-{i:03d}" for i in range(10)}
    assert all(count == 1 for count in rep.alarms_handled.values()), rep.alarms_handled
    assert len(rep.markers_handled) == 10 and all(count == 1 for count in rep.markers_handled.values()), rep.markers_handled
    assert rep.lost == 0 and rep.duplicates == 0 and rep.leaked_agents == 0
    assert len(rep.write_latency) == 10 and len(rep.alarm_lateness) == 10
    with capsys.disabled():
        bench.print_report(rep)
