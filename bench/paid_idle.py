"""Paid idle time: where a run's VM minutes go that are not the workload.

    .venv/bin/python bench/paid_idle.py [--runs 3]            # makes local demo runs, then reads them
    .venv/bin/python bench/paid_idle.py --config FILE [--since 30d]   # reads the ledger a config names

For each run that reached DESTROYED it prints, per VM, the seconds from the VM's boot
(the bootstrap's first stamp) to each boot phase it reported -- ``bundle_installed``,
``driver_ready``, ``agent_ready``, ``first_task`` -- and from its ``last_task`` to the
run's DESTROYED transition (what the teardown costs), then p50 and p99 over all VMs,
grouped by image (``stock``, or the prepared image the run's bundle records). A phase a
VM never reported is shown as ``-`` and left out of the percentiles. Nothing is asserted:
the numbers are the point (issue 20's "paid idle time, measured").
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

TO_PHASES = ("bundle_installed", "driver_ready", "agent_ready", "first_task")
COLUMNS = (*TO_PHASES, "last_task->destroyed")


def _at(iso: str | None) -> datetime | None:
    return datetime.fromisoformat(iso) if iso else None


def _destroyed_at(run) -> datetime | None:
    return next((_at(t.at) for t in reversed(run.transitions) if t.state == "DESTROYED"), None)


def vm_rows(run) -> list[dict]:
    """One row per VM of ``run``: worker, image, and seconds per column (None: not reported)."""
    rows = []
    destroyed = _destroyed_at(run)
    image = (run.bundle or {}).get("image") or "stock"
    for vm in run.vms:
        phases = vm.get("phases") or {}
        booted = _at(phases.get("booted"))
        if booted is None:
            continue
        row: dict = {"run": run.run_id, "worker": vm.get("worker"), "image": image}
        for name in TO_PHASES:
            at = _at(phases.get(name))
            row[name] = (at - booted).total_seconds() if at else None
        last = _at(phases.get("last_task"))
        row["last_task->destroyed"] = (destroyed - last).total_seconds() if last and destroyed else None
        rows.append(row)
    return rows


def percentile(values: list[float], share: float) -> float | None:
    """The ``share`` percentile (nearest rank) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(share * len(ordered))))
    return ordered[rank - 1]


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_table(rows: list[dict]) -> None:
    head = f"{'run':<24} {'vm':>3} {'image':<10} " + " ".join(f"{c:>20}" for c in COLUMNS)
    print(head)
    print("-" * len(head))
    for row in rows:
        cells = " ".join(f"{_cell(row[c]):>20}" for c in COLUMNS)
        print(f"{row['run'][:24]:<24} {row['worker']!s:>3} {row['image']:<10} {cells}")
    for image in sorted({r["image"] for r in rows}):
        group = [r for r in rows if r["image"] == image]
        for label, share in (("p50", 0.5), ("p99", 0.99)):
            cells = " ".join(f"{_cell(percentile([r[c] for r in group if r[c] is not None], share)):>20}" for c in COLUMNS)
            print(f"{label + ' (' + str(len(group)) + ' VMs)':<24} {'':>3} {image:<10} {cells}")


def ledger_runs(config_file: str, since: timedelta | None) -> list:
    from ephemera.assembly import load_config
    from ephemera.context import Context
    from ephemera.timeutil import now_utc

    ctx = Context(load_config(config_file))
    runs = [r for r in ctx.ledger.list() if _destroyed_at(r) is not None]
    if since is not None:
        runs = [r for r in runs if _at(r.created_at) >= now_utc() - since]
    return sorted(runs, key=lambda r: r.created_at)


def demo_runs(count: int) -> list:
    """``count`` local demo runs (the whole flow, each in a fresh home), as recorded."""
    from ephemera.cli.demo import run_demo
    from ephemera.context import Context

    runs = []
    for i in range(count):
        home = Path(tempfile.mkdtemp(prefix=f"ephemera-paid-idle-{i}-"))
        with contextlib.redirect_stdout(io.StringIO()):
            code = run_demo(str(home))
        if code != 0:
            print(f"demo run {i} failed (home {home}); left out", file=sys.stderr)
            continue
        runs += [r for r in Context(yaml.safe_load((home / "config.yaml").read_text())).ledger.list()]
    return runs


def main(argv: list[str] | None = None) -> int:
    from ephemera.config.fields import duration_seconds

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="read the runs of this config's ledger instead of making local ones")
    parser.add_argument("--since", help="with --config: only runs created in this window, e.g. 30d")
    parser.add_argument("--runs", type=int, default=3, help="local demo runs to make (without --config)")
    args = parser.parse_args(argv)
    if args.config:
        runs = ledger_runs(args.config, timedelta(seconds=duration_seconds(args.since)) if args.since else None)
    else:
        runs = demo_runs(args.runs)
    rows = [row for run in runs for row in vm_rows(run)]
    if not rows:
        print("no destroyed run with VM boot reports found")
        return 1
    print(f"seconds from each VM's boot to each phase, and from its last task to DESTROYED ({len(runs)} runs)\n")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
