"""Benchmark of the Lithops bridge: wall time from executor creation to results.

    .venv/bin/python bench/bridge.py [--repeat N] [--only overhead|ratio|wall] [--with-lithops [--lithops-python PY]]

Two tables. **Per-call overhead** (``--only overhead``): µs per call of a ``map`` of
1,000, 10,000 and 100,000 no-op calls on the localhost backend (pool warm), against a
warm ``ProcessPoolExecutor(2)`` mapping the same calls in chunks (the floor of
shipping calls to processes), and the ratio; then 1,000 no-op calls on the
standalone backend over two local VMs against the localhost backend, both from this
process with warm pools, in series taking turns while the VMs are up (so drift in
the machine's load falls on both sides alike), and that ratio (``--only ratio``: that
row alone, with the localhost figure it is compared with; at least 9 maps a side; a
function's later maps, and its first map as its own row, beside the time a file takes to
be created in the storage folder, since every claim and result creates one). Each cell
is the median of ``--repeat`` runs;
the ``load`` column is ``os.getloadavg()`` (1 minute) when the row was measured: on a
shared machine, compare rows measured at similar load.
**Wall time** (``--only wall``), as below.

Cold rows run every measurement in a fresh Python process (the executor and its pool
start from nothing, as in a new script); warm rows run in this process after a
warm-up, so the pool is already up (the bridge's localhost pool stays warm between
executors; the ProcessPoolExecutor is reused). The two local VMs are two agents of
one run (started with the agent's own `start`, pools warm once their heartbeats say
so, as a run's VMs are); their client is a fresh process each time. With
``--with-lithops``, Lithops' localhost backend, one cold run, under ``--lithops-python``
(an interpreter that has ``lithops``; default this one). Columns: ``map`` of 200 and
1,000 no-op calls, and of 200 calls sleeping 50 ms. Each cell is the median of
``--repeat`` runs (default 3).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CASES = [("200 no-op", "noop", 200), ("1,000 no-op", "noop", 1000), ("200 x 50 ms", "sleep", 200)]
OVERHEAD_SIZES = (1000, 10_000, 100_000)  # calls per map in the per-call overhead table
STANDALONE_CALLS = 1000  # calls per map in the standalone-against-localhost row


def noop(x):
    return x


def sleep50(x):
    time.sleep(0.05)
    return x


FUNCS = {"noop": noop, "sleep": sleep50}


# --- one measurement, in this process ---------------------------------------------------
def run_bridge(config: dict | None, func, n: int) -> float:
    import lithops_bridge

    start = time.perf_counter()
    with lithops_bridge.FunctionExecutor(config=config) as fexec:
        result = fexec.get_result(fexec.map(func, range(n)))
    elapsed = time.perf_counter() - start
    assert result == list(range(n))
    return elapsed


def run_ppe(func, n: int, pool: ProcessPoolExecutor | None = None) -> float:
    start = time.perf_counter()
    if pool is None:
        with ProcessPoolExecutor(2) as ex:
            result = list(ex.map(func, range(n)))
    else:
        result = list(pool.map(func, range(n)))
    elapsed = time.perf_counter() - start
    assert result == list(range(n))
    return elapsed


def run_ppe_chunked(pool: ProcessPoolExecutor, n: int, workers: int = 2) -> float:
    """A warm pool mapping ``n`` no-op calls in chunks (as many as the bridge's first cut)."""
    start = time.perf_counter()
    result = list(pool.map(noop, range(n), chunksize=max(1, n // (4 * workers))))
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


def run_one(kind: str, func_name: str, n: int, config: dict | None) -> float:
    """One measurement of ``kind`` (bridge, ppe, lithops); the modules are imported first."""
    func = FUNCS[func_name]
    if kind == "bridge":
        import lithops_bridge  # noqa: F401 - import time is not executor time

        return run_bridge(config, func, n)
    if kind == "ppe":
        return run_ppe(func, n)
    import lithops  # noqa: F401

    return run_lithops(func, n)


# --- cold: a fresh process per measurement ------------------------------------------------
def cold(kind: str, config: dict | None = None, python: str = sys.executable):
    def runner(func_name: str, n: int) -> float:
        cmd = [python, str(Path(__file__).resolve()), "--one", kind, func_name, str(n), "--config", json.dumps(config)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"{kind} measurement failed:\n{proc.stderr[-3000:]}")
        return float(proc.stdout.strip().splitlines()[-1])

    return runner


def measure(label: str, runner, repeat: int) -> list[str]:
    cells = []
    for _name, kind, n in CASES:
        times = [runner(kind, n) for _ in range(repeat)]
        cells.append(f"{statistics.median(times):.3f} s")
    print(f"  measured {label}: {', '.join(cells)}", file=sys.stderr)
    return cells


def _median_us(runner, n: int, repeat: int) -> float:
    return statistics.median(runner(n) for _ in range(repeat)) / n * 1e6


def file_creation_us(folder: Path, files: int = 200) -> float:
    """Microseconds to create an empty file in ``folder`` (every claim and result of a
    standalone batch on localhost storage creates one; on a healthy disk some 15 µs, in
    a long-used ``/tmp`` of one test machine 15 to 400 µs from hour to hour)."""
    scratch = Path(tempfile.mkdtemp(dir=folder))
    start = time.perf_counter()
    for i in range(files):
        os.close(os.open(scratch / str(i), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
    took = (time.perf_counter() - start) / files * 1e6
    for i in range(files):
        os.unlink(scratch / str(i))
    scratch.rmdir()
    return took


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def overhead(local: dict, repeat: int) -> list[str]:
    """The per-call overhead table (markdown lines), measured in this process with no VM running."""
    run_bridge(local, noop, 10)  # warm-up: the shared pool of this process is up from here on
    lines = [
        f"per-call overhead of a no-op map, µs per call ({os.cpu_count()} CPUs, warm pools, median of {repeat}):",
        "",
        "| calls | bridge, localhost | ProcessPoolExecutor(2), chunked | ratio | load |",
        "|---|---|---|---|---|",
    ]
    with ProcessPoolExecutor(2) as pool:
        run_ppe_chunked(pool, 10)  # warm-up
        for n in OVERHEAD_SIZES:
            bridge = _median_us(lambda k: run_bridge(local, noop, k), n, repeat)
            ppe = _median_us(lambda k: run_ppe_chunked(pool, k), n, repeat)
            print(f"  measured {n:,} calls: bridge {bridge:.1f} µs, ProcessPoolExecutor {ppe:.1f} µs", file=sys.stderr)
            lines.append(f"| {n:,} | {bridge:.1f} µs | {ppe:.1f} µs | {bridge / ppe:.1f}x | {_load()} |")
    return lines


def standalone_row(vms_config: dict, local_config: dict, repeat: int, storage: Path) -> list[str]:
    """Markdown lines: ``STANDALONE_CALLS`` no-op calls over the two local VMs against
    localhost while the VMs are up: three rounds of a series of back-to-back maps on
    each side (``repeat`` maps per side in all), each series after one map not counted.
    A standalone map's job is cleaned up in the background, so in a series each map
    pays for the previous one's cleanup, as back-to-back maps do in a script. Back to
    back, the function's pace is known (``standalone.pace``); a third series forgets it
    before every map, as for the first map of a function."""
    from lithops_bridge.backends.standalone.pace import PACES

    def first_map(config: dict, func, n: int) -> float:
        PACES.clear()
        return run_bridge(config, func, n)

    n = STANDALONE_CALLS
    sides: dict[str, list[float]] = {"local": [], "paced": [], "first": []}
    runs = {"local": (run_bridge, local_config), "paced": (run_bridge, vms_config), "first": (first_map, vms_config)}
    rounds = 3 if repeat >= 3 else 1
    for r in range(rounds):  # series of back-to-back maps, each side in turn, each after a map not counted
        per_round = repeat // rounds + (r < repeat % rounds)
        for side, (runner, config) in runs.items():
            runner(config, noop, n)  # the other side's background work (a job's cleanup) ends here
            sides[side].extend(runner(config, noop, n) for _ in range(per_round))
    localhost, paced, first = (statistics.median(sides[k]) / n * 1e6 for k in ("local", "paced", "first"))
    load, creation = _load(), f"{file_creation_us(storage):.0f} µs"
    print(
        f"  measured standalone {paced:.1f} µs (first map of a function {first:.1f} µs), localhost {localhost:.1f} µs;"
        f" a file created in {storage} in {creation}",
        file=sys.stderr,
    )
    head = "| {:,} no-op calls, from this process, series in turn | µs per call | wall time | ratio to localhost | load | file creation |"
    return [
        "",
        head.format(n),
        "|---|---|---|---|---|---|",
        f"| bridge, localhost backend | {localhost:.1f} µs | {localhost * n / 1e6:.3f} s | 1.0x | {load} | {creation} |",
        f"| bridge, 2 local VMs (standalone) | {paced:.1f} µs | {paced * n / 1e6:.3f} s | {paced / localhost:.2f}x | {load} | {creation} |",
        f"| bridge, 2 local VMs, first map of a function | {first:.1f} µs | {first * n / 1e6:.3f} s | {first / localhost:.2f}x | {load} | {creation} |",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=("overhead", "ratio", "wall"), help="print one table only")
    parser.add_argument("--with-lithops", action="store_true", help="also time Lithops' localhost backend")
    parser.add_argument("--lithops-python", default=sys.executable, help="interpreter with lithops installed")
    parser.add_argument("--one", nargs=3, metavar=("KIND", "FUNC", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--config", default="null", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        kind, func_name, n = args.one
        print(f"{run_one(kind, func_name, int(n), json.loads(args.config)):.6f}")
        return 0
    os.environ.pop("LITHOPS_CONFIG", None)
    rows: list[tuple[str, list[str]]] = []
    table: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bridge-bench-") as tmp:
        os.environ["EPHEMERA_HOME"] = str(Path(tmp) / "home")
        local = {
            "lithops": {"backend": "localhost", "storage": "localhost"},
            "localhost": {"storage_root": str(Path(tmp) / "storage")},
        }
        if args.only in (None, "overhead"):
            table = overhead(local, args.repeat)
        if args.only is None or args.only == "wall":
            rows = wall_rows(local, args, before_vms=True)
        from ephemera.vm.localrun import LocalRun

        with LocalRun(Path(tmp) / "vms", workers=2) as run:
            run.wait_ready()  # both agents heartbeat with a warm pool, as the VMs of a run would
            if args.only in (None, "overhead", "ratio"):
                turns = max(args.repeat, 9) if args.only == "ratio" else args.repeat
                table += standalone_row(run.lithops_config, local, turns, Path(tmp))
            if args.only is None or args.only == "wall":
                rows[2:2] = wall_rows(run.lithops_config, args, before_vms=False)
    if table:
        print()
        print("\n".join(table))
    if rows:
        header = ["executor"] + [name for name, _k, _n in CASES]
        note = "; Lithops: one run" if any(label.startswith("Lithops") for label, _c in rows) else ""
        print(f"\nmap wall time, executor creation to results ({os.cpu_count()} CPUs, median of {args.repeat}{note}):\n")
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for label, cells in rows:
            print("| " + " | ".join([label] + cells) + " |")
    return 0


def wall_rows(config: dict, args, before_vms: bool) -> list[tuple[str, list[str]]]:
    """The wall time table's rows: with ``before_vms``, localhost cold and warm (``config``),
    ProcessPoolExecutor and Lithops; else the two VMs' row (``config``: their client's)."""
    if not before_vms:
        return [("bridge, 2 local VMs (standalone)", measure("bridge 2 VMs", cold("bridge", config), args.repeat))]
    rows = [("bridge, localhost backend, cold", measure("bridge localhost cold", cold("bridge", config), args.repeat))]
    run_bridge(config, noop, 10)  # warm-up: the shared pool of this process is up from here on
    rows.append(
        (
            "bridge, localhost backend, warm",
            measure("bridge localhost warm", lambda f, n: run_bridge(config, FUNCS[f], n), args.repeat),
        )
    )
    rows.append(("ProcessPoolExecutor(2), cold", measure("ProcessPoolExecutor cold", cold("ppe"), args.repeat)))
    with ProcessPoolExecutor(2) as pool:
        run_ppe(noop, 10, pool)  # warm-up
        rows.append(
            (
                "ProcessPoolExecutor(2), warm",
                measure("ProcessPoolExecutor warm", lambda f, n: run_ppe(FUNCS[f], n, pool), args.repeat),
            )
        )
    if args.with_lithops:
        check = subprocess.run([args.lithops_python, "-c", "import lithops"], capture_output=True)
        if check.returncode != 0:
            print(f"  lithops is not importable by {args.lithops_python}: its row is skipped", file=sys.stderr)
        else:
            rows.append(("Lithops localhost, cold", measure("lithops", cold("lithops", python=args.lithops_python), 1)))
    return rows


if __name__ == "__main__":
    sys.exit(main())
