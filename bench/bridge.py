"""Benchmark of the Lithops bridge: wall time from executor creation to results.

    .venv/bin/python bench/bridge.py [--repeat N] [--with-lithops]

Rows: the bridge's localhost backend; the bridge across two local VMs of a run (two
agents started with the agent's own `start`, over localhost storage); Python's
``concurrent.futures.ProcessPoolExecutor(2)``; and, with ``--with-lithops`` when the
``lithops`` package is importable, Lithops' localhost backend. Columns: ``map`` of
200 and 1,000 no-op calls, and of 200 calls sleeping 50 ms. Each cell is the median of
``--repeat`` runs (default 3), each with a fresh executor.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CASES = [("200 no-op", "noop", 200), ("1,000 no-op", "noop", 1000), ("200 x 50 ms", "sleep", 200)]


def noop(x):
    return x


def sleep50(x):
    time.sleep(0.05)
    return x


FUNCS = {"noop": noop, "sleep": sleep50}


def run_bridge(config: dict | None, func, n: int) -> float:
    import lithops_bridge

    start = time.perf_counter()
    with lithops_bridge.FunctionExecutor(config=config) as fexec:
        result = fexec.get_result(fexec.map(func, range(n)))
    elapsed = time.perf_counter() - start
    assert result == list(range(n))
    return elapsed


def run_ppe(func, n: int) -> float:
    start = time.perf_counter()
    with ProcessPoolExecutor(2) as ex:
        result = list(ex.map(func, range(n)))
    elapsed = time.perf_counter() - start
    assert result == list(range(n))
    return elapsed


def run_lithops(func, n: int) -> float:
    import lithops

    start = time.perf_counter()
    config = {"lithops": {"backend": "localhost", "storage": "localhost"}, "localhost": {"runtime": sys.executable}}
    fexec = lithops.FunctionExecutor(config=config, log_level=None)
    result = fexec.get_result(fexec.map(func, range(n)))
    elapsed = time.perf_counter() - start
    assert result == list(range(n))
    return elapsed


def measure(label: str, runner, repeat: int) -> list[str]:
    cells = []
    for _name, kind, n in CASES:
        times = [runner(FUNCS[kind], n) for _ in range(repeat)]
        cells.append(f"{statistics.median(times):.3f} s")
    print(f"  measured {label}: {', '.join(cells)}", file=sys.stderr)
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--with-lithops", action="store_true", help="also time Lithops' localhost backend")
    args = parser.parse_args(argv)
    os.environ.pop("LITHOPS_CONFIG", None)
    rows: list[tuple[str, list[str]]] = []
    with tempfile.TemporaryDirectory(prefix="bridge-bench-") as tmp:
        os.environ.setdefault("EPHEMERA_HOME", str(Path(tmp) / "home"))
        local = {"lithops": {"backend": "localhost", "storage": "localhost"},
                 "localhost": {"storage_root": str(Path(tmp) / "storage")}}
        rows.append(("bridge, localhost backend", measure("bridge localhost", lambda f, n: run_bridge(local, f, n), args.repeat)))
        from lithops_bridge.local_run import LocalRun

        with LocalRun(Path(tmp) / "vms", workers=2) as run:
            time.sleep(0.5)  # let both agents warm their pools, as VMs of a run would be
            rows.append(("bridge, 2 local VMs (standalone)",
                         measure("bridge 2 VMs", lambda f, n: run_bridge(run.lithops_config, f, n), args.repeat)))
        rows.append(("ProcessPoolExecutor(2)", measure("ProcessPoolExecutor", run_ppe, args.repeat)))
        if args.with_lithops:
            try:
                import lithops  # noqa: F401
            except ImportError:
                print("  lithops is not installed: its row is skipped", file=sys.stderr)
            else:
                rows.append(("Lithops localhost", measure("lithops", run_lithops, 1)))
    header = ["executor"] + [name for name, _k, _n in CASES]
    note = "; Lithops: one run" if len(rows) > 3 else ""
    print(f"\nmap wall time, executor creation to results ({os.cpu_count()} CPUs, median of {args.repeat}{note}):\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for label, cells in rows:
        print("| " + " | ".join([label] + cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
