"""How long a VM takes to install the run bundle: uv against pip, cold and warm caches.

    .venv/bin/python bench/bundle_install.py [--requirements six cloudpickle] [--repeat 3]

Packs the bundle of the current Ephemera (no workload source) with the given
requirements, then times the bootstrap's install into a fresh environment with each
installer, the way a cloud VM does it (no host site-packages, the bundle's hashed lock
from the index): a
"cold" row with an empty installer cache, a "warm" row reusing it. Prints a table.
Needs `uv` (the test extra) and access to PyPI.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ephemera.bundle.pack import pack
from ephemera.assembly import load_config
from ephemera.vm import bootstrap


def one_install(bundle_dir: Path, installer: str, cache: Path) -> float:
    with tempfile.TemporaryDirectory() as root:
        os.environ["UV_CACHE_DIR"] = str(cache / "uv")
        os.environ["PIP_CACHE_DIR"] = str(cache / "pip")
        started = time.monotonic()
        bootstrap.install(
            Path(root), {"python": sys.executable, "uv": str(Path(sys.executable).parent / "uv")}, bundle_dir, installer=installer
        )
        return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requirements", nargs="*", default=["six", "cloudpickle"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bundle = pack(load_config({"workload": {"requirements": args.requirements}}), tmp / "out", lock=True)
        root = tmp / "vm"
        root.mkdir()
        unpacked = bootstrap.fetch_bundle(
            root, {"bundle": {"key": "b", "sha256": bundle.sha256, "size": bundle.size, "url": bundle.path.as_uri()}}
        )
        rows = []
        for installer in ("uv", "pip"):
            cache = tmp / f"cache-{installer}"
            cold = one_install(unpacked, installer, cache)
            warm = statistics.median(one_install(unpacked, installer, cache) for _ in range(args.repeat))
            rows.append((installer, cold, warm))
    print(f"bundle {bundle.size / 1e6:.2f} MB; requirements: {' '.join(args.requirements) or 'none'} (+ Ephemera's own)")
    print(f"| installer | cold cache | warm cache (median of {args.repeat}) |")
    print("|---|---|---|")
    for installer, cold, warm in rows:
        print(f"| {installer} | {cold:.1f} s | {warm:.1f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
