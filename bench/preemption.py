"""How fast a spot VM reacts to its preemption notice, and what a checkpoint costs.

    .venv/bin/python bench/preemption.py [--samples 5]

Notice: ``--samples`` local agents (``LocalRun``, localhost storage) run the
``checkpoint_loop`` sample workload, each watching a local notice file (polled every
``ephemera.vm.preemption.POLL_INTERVAL`` seconds); once the workload has checkpointed twice the notice file is
written, and the bench times how long until the ``preempted`` heartbeat is stored and
until the workload's ``on_preempt`` callback has saved its checkpoint. Both must fit in
the platform's grace (AWS: 120 s, IBM: a best-effort 30 s); the poll interval bounds them.

Checkpoint: ``ctx.checkpoint`` then ``ctx.restore`` of 1 KiB, 1 MiB and 64 MiB of bytes
on localhost storage (what a resuming VM pays before its first step). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))


def _wait(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    return None


def notice_sample(root: Path) -> tuple[float | None, float | None]:
    """(seconds to the preempted heartbeat, seconds to the callback's checkpoint) after one notice."""
    from ephemera import layout
    from ephemera.errors import NoSuchKeyError
    from ephemera.model.heartbeat import VMState
    from ephemera.storage.localhost.backend import LocalhostStorage
    from ephemera.vm.localrun import LocalRun

    notice_path = root / "notice.json"
    run = LocalRun(
        root,
        workers=1,
        entry="ephemera.workloads.checkpoint_loop:main",
        params={"steps": 10_000, "step_seconds": 0.05},
        heartbeat_interval=5.0,
        preemption={"source": "local", "notice_file": str(notice_path)},
    )
    storage = LocalhostStorage(root / "storage")

    def has(name: str) -> bool:
        try:
            storage.head(run.bucket, layout.checkpoint_key(run.run_id, name))
            return True
        except NoSuchKeyError:
            return False

    with run:
        _wait(lambda: has("progress"))
        time.sleep(0.2)
        start = time.monotonic()
        notice_path.write_text(json.dumps({"action": "terminate", "time": None}))
        beat = _wait(lambda: run.heartbeats().get(0) and run.heartbeats()[0].state is VMState.PREEMPTED)
        beat_s = time.monotonic() - start if beat else None
        told = _wait(lambda: has("notice"))
        told_s = time.monotonic() - start if told else None
    return beat_s, told_s


def checkpoint_costs(root: Path) -> list[tuple[str, float, float]]:
    """(size, seconds to checkpoint, seconds to restore) on localhost storage."""
    from ephemera.model.jobs import JobSpec
    from ephemera.storage.localhost.backend import LocalhostStorage
    from ephemera.vm.workload import WorkloadContext

    storage = LocalhostStorage(root / "ckpt")
    storage.create_bucket("state")
    job = JobSpec(
        run_id="r-bench",
        workspace="ws",
        entry="x:y",
        params={},
        state_bucket="state",
        output_bucket="state",
        output_prefix="outputs/r-bench/",
    )
    ctx = WorkloadContext(job=job, storage=storage, run_key="ab" * 32)  # checkpoints are tagged with the run key
    rows = []
    for label, size in (("1 KiB", 1 << 10), ("1 MiB", 1 << 20), ("64 MiB", 64 << 20)):
        data = bytes(size)
        t0 = time.perf_counter()
        ctx.checkpoint("model", data)
        t1 = time.perf_counter()
        assert ctx.restore("model") == data
        rows.append((label, t1 - t0, time.perf_counter() - t1))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args(argv)
    from ephemera.vm import preemption

    beats, told = [], []
    for _ in range(args.samples):
        with tempfile.TemporaryDirectory() as tmp:
            b, t = notice_sample(Path(tmp))
            if b is not None:
                beats.append(b)
            if t is not None:
                told.append(t)

    def row(name: str, values: list[float]) -> str:
        if not values:
            return f"{name:<38} {'-':>8} {'-':>8} {'-':>8}   0/{args.samples}"
        return f"{name:<38} {min(values):8.2f} {statistics.median(values):8.2f} {max(values):8.2f}   {len(values)}/{args.samples}"

    print(f"preemption notice -> (seconds; poll interval {preemption.POLL_INTERVAL} s)")
    print(f"{'':<38} {'min':>8} {'median':>8} {'max':>8}   seen")
    print(row("preempted heartbeat stored", beats))
    print(row("workload's on_preempt checkpoint saved", told))
    with tempfile.TemporaryDirectory() as tmp:
        print("\ncheckpoint on localhost storage (seconds)")
        print(f"{'size':<10} {'checkpoint':>11} {'restore':>9}")
        for label, put, get in checkpoint_costs(Path(tmp)):
            print(f"{label:<10} {put:11.3f} {get:9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
