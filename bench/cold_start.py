"""Benchmark of a deployed action's cold start: a fresh interpreter runs ``status``.

    .venv/bin/python bench/cold_start.py [--repeat N] [--tree PATH]

Each run is a new Python process that does what a deployed OpenWhisk action does on a
cold container: import the entry point (``ephemera.actions.entry``, the zip's
``__main__``), then run the ``status`` action on a local config (a temporary home and
localhost storage, no run open). It prints a table of wall time (the process's own
clock from before the first import to the result, min and median over ``--repeat``
runs, default 5; and the process's CPU time, steadier on a busy machine), the modules imported (all of ``sys.modules`` that the run added,
and those under ``ephemera.``), and whether a cloud SDK (``boto3``, ``botocore``,
``ibm_boto3``, ``ibm_botocore``, ``ibm_schematics``, ``ibm_cloud_sdk_core``) or a
plugin's client module (each registered storage backend's ``backend`` module, each
engine's ``engine`` module) was imported, and which modules of each plugin's folder. Only the chosen backend's and engine's
clients should be: validating the config must not pull in the others. ``--tree`` runs
the same probe on another checkout of the code (e.g. an older commit, for a before/after
table); its modules are imported from there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SDKS = ("boto3", "botocore", "ibm_boto3", "ibm_botocore", "ibm_schematics", "ibm_cloud_sdk_core")
CLIENTS = (
    "ephemera.storage.localhost.backend",
    "ephemera.storage.aws_s3.backend",
    "ephemera.storage.ibm_cos.backend",
    "ephemera.engines.terraform.engine",
    "ephemera.engines.schematics.engine",
)

# the plugin folders; the config chooses localhost and terraform, so the others should stay unimported
PLUGINS = ("storage.aws_s3", "storage.ibm_cos", "engines.schematics", "storage.localhost", "engines.terraform")

PROBE = r"""
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
before = set(sys.modules)
from ephemera.actions.entry import invoke
result = invoke("status", {"config": json.loads(sys.argv[1])})
elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
assert "error" not in result, result
added = sorted(set(sys.modules) - before)
print(json.dumps({"seconds": elapsed, "cpu": cpu, "modules": added}))
"""


def one_run(config: dict, tree: Path = ROOT) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(config)], cwd=tree, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"the probe failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout whose code to measure (default: this one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ephemera-cold-") as tmp:
        config = {
            "home": str(Path(tmp) / "home"),
            "storage": {"backend": "localhost", "bucket": "bench-state"},
            "localhost": {"root": str(Path(tmp) / "buckets")},
            "engine": {"backend": "terraform"},
        }
        runs = [one_run(config, args.tree) for _ in range(args.repeat)]
    times = [r["seconds"] * 1000 for r in runs]
    cpu = [r["cpu"] * 1000 for r in runs]
    modules = runs[-1]["modules"]
    ours = [m for m in modules if m == "ephemera" or m.startswith("ephemera.")]
    sdks = [m for m in SDKS if m in modules]
    clients = [m for m in CLIENTS if m in modules]
    print(f"| cold start of `status` ({args.repeat} fresh processes) | value |")
    print("|---|---|")
    print(f"| wall time, min ms | {min(times):.0f} |")
    print(f"| wall time, median ms | {statistics.median(times):.0f} |")
    print(f"| CPU time, min ms | {min(cpu):.0f} |")
    print(f"| CPU time, median ms | {statistics.median(cpu):.0f} |")
    print(f"| modules imported | {len(modules)} |")
    print(f"| `ephemera.*` modules imported | {len(ours)} |")
    print(f"| cloud SDK imported | {', '.join(sdks) or 'none'} |")
    print(f"| plugin clients imported | {', '.join(c.split('.', 1)[1] for c in clients) or 'none'} |")
    for plugin in PLUGINS:
        touched = [m.rsplit(".", 1)[1] for m in ours if m.startswith(f"ephemera.{plugin}.")]
        print(f"| {plugin} modules imported | {', '.join(touched) or '-'} |")
    for name in CLIENTS:
        print(f"| {name.split('.', 1)[1]} | {'imported' if name in modules else '-'} |")


if __name__ == "__main__":
    main()
