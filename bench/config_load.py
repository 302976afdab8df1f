"""Benchmark of loading a config: what every action invocation and CLI command pays.

    .venv/bin/python bench/config_load.py [--repeat N]

Rows: importing ``ephemera.config`` in a fresh process (pydantic included), the first
validation in that process (the config model is assembled from the registries and
the backend/engine spec modules are imported), and one further validation of a
config with triggers and rules (median of 200). Each process row is the median of
``--repeat`` fresh processes (default 5).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import json, statistics, time
t0 = time.perf_counter()
from ephemera.assembly import validate
t1 = time.perf_counter()
validate({})
t2 = time.perf_counter()
raw = {"storage": {"bucket": "bench-state"}, "timeouts": {"hard": "2h"},
       "triggers": [{"name": "nightly", "kind": "alarm", "cron": "0 2 * * *", "timezone": "Europe/Madrid"},
                    {"name": "done", "kind": "object_write", "prefix": "outputs/", "suffix": ["_SUCCESS.json"]}],
       "rules": [{"trigger": "nightly", "action": "apply"}, {"trigger": "done", "action": "destroy"}]}
laps = []
for _ in range(200):
    s = time.perf_counter(); validate(raw); laps.append(time.perf_counter() - s)
print(json.dumps({"import": t1 - t0, "first": t2 - t1, "again": statistics.median(laps)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    runs = [
        json.loads(subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True).stdout)
        for _ in range(args.repeat)
    ]
    print(f"| step | median ms (of {args.repeat} processes) |")
    print("|---|---|")
    for key, label in (
        ("import", "import ephemera.config"),
        ("first", "first validate (model assembled)"),
        ("again", "each further validate"),
    ):
        print(f"| {label} | {statistics.median(r[key] for r in runs) * 1000:.2f} |")


if __name__ == "__main__":
    main()
