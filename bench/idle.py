"""How fast an idle ``ephemera up`` reacts: alarm -> action start, object write -> action start.

    .venv/bin/python bench/idle.py [--samples 20] [--cold]

``--samples`` one-off alarms half a second apart, then as many object writes half a
second apart, on localhost storage, each bound to a probe action
(``bench/probe_action.py``) that returns the moment it started. Alarm: that moment
minus the scheduled time; write: minus the moment the write returned. ``--cold``
measures the runtime as it was before warm workers (a fresh process per invocation,
one queue). Imported by ``bench/load.py``, which prints these beside the load figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
PROBE = "probe_action:main"  # importable by the action processes: bench/ is put on PYTHONPATH


@dataclass
class IdleReport:
    samples: int  # alarms, and object writes
    alarm: list = field(default_factory=list)  # seconds, action start - scheduled time
    write: list = field(default_factory=list)  # seconds, action start - write returned
    missing: int = 0  # probes that never reported


def _config(home: Path, times: list[datetime]) -> dict:
    triggers = [{"name": f"tick-{i:03d}", "kind": "alarm", "once": t.isoformat()} for i, t in enumerate(times)]
    triggers.append({"name": "probe-write", "kind": "object_write", "prefix": "probe/"})
    return {
        "home": str(home),
        "storage": {"backend": "localhost", "bucket": "ephemera-idle"},
        "localhost": {"root": str(home / "storage")},
        "triggers": triggers,
        "rules": [{"trigger": t["name"], "action": "apply"} for t in triggers[:-1]]
        + [{"trigger": "probe-write", "action": "destroy"}],
    }


def run_idle(
    samples: int = 20, *, home: Path | None = None, warm: bool = True, spacing: float = 0.5, lead: float = 3.0
) -> IdleReport:
    """Measure (nothing asserted): alarms first, then writes, one at a time."""
    from ephemera.assembly import load_config
    from ephemera.assembly import get_storage
    from ephemera.runtime.activations import list_activations
    from ephemera.runtime.runtime import run_up

    own = home is None
    home = Path(tempfile.mkdtemp(prefix="ephemera-idle-")) if own else Path(home)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(BENCH), os.environ.get("PYTHONPATH", "")])
    sys.path.insert(0, str(BENCH))
    first = datetime.now(timezone.utc) + timedelta(seconds=lead)
    times = [first + timedelta(seconds=spacing * i) for i in range(samples)]
    config = load_config(_config(home, times))
    storage = get_storage(config)
    written: dict[str, float] = {}
    report = IdleReport(samples)

    def writer() -> None:
        time.sleep(max(0.0, (times[-1] - datetime.now(timezone.utc)).total_seconds()) + 2 * spacing)
        for i in range(samples):
            key = f"probe/{i:03d}.json"
            storage.put(config.state_bucket, key, b"{}")
            written[key] = time.time()
            time.sleep(spacing)

    threading.Thread(target=writer, daemon=True).start()
    deadline = time.monotonic() + lead + 3 * spacing * samples + 60

    def done() -> bool:
        return len(list_activations(storage, config.state_bucket, None)) >= 2 * samples or time.monotonic() > deadline

    options = {"warm": False, "lanes": False, "max_concurrent": 8} if not warm else {}
    try:
        run_up(config, until=done, reap_interval=None, action_targets={"apply": PROBE, "destroy": PROBE}, **options)
        for act in list_activations(storage, config.state_bucket, None):
            entered = (act.result or {}).get("entered")
            if entered is None:
                report.missing += 1
            elif act.action == "apply":
                report.alarm.append(entered - datetime.fromisoformat(act.event["ephemera_time"]).timestamp())
            elif act.event.get("key") in written:
                report.write.append(entered - written[act.event["key"]])
        report.missing += 2 * samples - len(report.alarm) - len(report.write) - report.missing
    finally:
        if own:
            shutil.rmtree(home, ignore_errors=True)
    return report


def pct(values: list, q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def print_idle(rep: IdleReport, label: str = "") -> None:
    print(
        f"\nidle runtime{label}: {rep.samples} alarms, then {rep.samples} object writes, one at a time"
        f"{f'; {rep.missing} probes missing' if rep.missing else ''}"
    )
    print(f"  {'':<40} {'p50':>10} {'p99':>10} {'max':>10}")
    for name, values in (("alarm -> action start", rep.alarm), ("object write -> action start", rep.write)):
        print(
            f"  {name:<40} {pct(values, 50) * 1000:7.1f} ms {pct(values, 99) * 1000:7.1f} ms "
            f"{max(values, default=float('nan')) * 1000:7.1f} ms"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--cold", action="store_true", help="a fresh process per invocation, one queue (the runtime before)")
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    rep = run_idle(args.samples, warm=not args.cold)
    print_idle(rep, " (cold)" if args.cold else "")
    return 0 if rep.missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
