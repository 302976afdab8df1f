"""Benchmark of a budget admission: what the monthly-cap check adds to an apply.

    .venv/bin/python bench/budget_admission.py [--runs 100,1000,5000] [--repeat N]

An admission (:func:`ephemera.lifecycle.budget.admit`) reads the run records of the
month to sum its spend, under the month's storage lock; records whose run id is stamped
in another month are not read. This fills a localhost ledger with N destroyed runs
(priced, each with its VM-seconds) spread evenly over the last 12 months and times one
admission against it: the median of ``--repeat`` (default 5), in milliseconds, with
the time to read the whole ledger (``ledger.list()``) beside it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ephemera.context import Context  # noqa: E402 - after the path above
from ephemera.lifecycle.budget import admit  # noqa: E402
from ephemera.model.runids import new_run_id  # noqa: E402
from ephemera.model.runs import RunRecord  # noqa: E402
from ephemera.timeutil import now_utc  # noqa: E402


def context(home: Path) -> Context:
    ctx = Context(
        {
            "home": str(home),
            "storage": {"backend": "localhost", "bucket": "bench"},
            "localhost": {"root": str(home / "storage")},
            "workspace": {"name": "ws", "stack": "local"},
            "workload": {"entry": "ephemera.workloads.smoke:main"},
            "cost": {"prices": {"local": {"hourly": 1.0}}},
            "budget": {"monthly": {"overall": 1e9, "ws": 1e9}},
        }
    )
    ctx.storage.create_bucket(ctx.config.state_bucket)
    return ctx


def fill(ctx: Context, n: int, start: int) -> None:
    now = now_utc()
    for i in range(start, n):
        created = now - timedelta(days=(i % 12) * 30.5)  # a twelfth of the runs in each month
        record = RunRecord(
            run_id=new_run_id("ws", created),
            workspace="ws",
            engine="terraform",
            state="DESTROYED",
            created_at=created.isoformat(),
        )
        record.vm_seconds = {"total": 600.0, "workload": 500.0, "outside": 100.0}
        ctx.ledger.create(record)


def timed(call, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="100,1000,5000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sizes = sorted(int(n) for n in args.runs.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        ctx = context(Path(tmp))
        probe = RunRecord(run_id="ws-probe", workspace="ws", engine="terraform", created_at=now_utc().isoformat())
        probe.hard_deadline = now_utc().isoformat()
        ctx.ledger.create(probe)
        print(f"{'runs in ledger':>15} {'this month':>11} {'admission ms':>13} {'whole ledger read ms':>21}")
        done = 0
        for n in sizes:
            fill(ctx, n, done)
            done = n
            admission = timed(lambda: admit(ctx, ctx.ledger.get("ws-probe")), args.repeat)
            listing = timed(lambda: list(ctx.ledger.list()), args.repeat)
            print(f"{n:>15,} {(n + 11) // 12:>11,} {admission:>13.1f} {listing:>21.1f}")


if __name__ == "__main__":
    main()
