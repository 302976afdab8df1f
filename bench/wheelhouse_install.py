"""A VM's install of a requirement set: from the wheelhouse (no index) against from the index.

    .venv/bin/python bench/wheelhouse_install.py [--requirements tabulate six cloudpickle pyyaml] [--repeat 3]

Resolves the set for this interpreter into a hashed lock and fetches its wheels the way
the controller does at pack time (:func:`ephemera.bundle.wheelhouse.fetch`, timed
too), then times installing that lock into a fresh virtual environment with each
installer (pip, uv), hashes required, two ways: from the index (what a VM on a stock
image does at every boot) and from the wheelhouse folder with ``--no-index
--find-links`` (what a local VM does, and what a cloud VM would do with a wheelhouse).
"cold": an empty installer cache; "warm": the cache of the cold run (a VM keeps no
cache between runs, so cold is the VM's real case). Prints a table. Needs PyPI.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ephemera.bundle.lock import find_uv
from ephemera.bundle.wheelhouse import LOCK_FILE, fetch


def one_install(lock: Path, installer: str, source: list[str], cache: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = Path(tmp) / "env"
        uv = find_uv()
        caches = {
            **os.environ,
            "UV_CACHE_DIR": str(cache / "uv"),
            "PIP_CACHE_DIR": str(cache / "pip"),
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_LINK_MODE": "copy",
        }
        started = time.monotonic()
        if installer == "uv":
            subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(env)], check=True, env=caches)
            cmd = [uv, "pip", "install", "--quiet", "--python", str(env / "bin" / "python")]
        else:
            subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, env=caches)
            cmd = [str(env / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run(cmd + ["--require-hashes", "--no-deps", *source, "-r", str(lock)], check=True, env=caches)
        return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requirements", nargs="*", default=["tabulate", "six", "cloudpickle", "pyyaml"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        os.environ["XDG_CACHE_HOME"] = str(tmp_path / "controller-cache")  # the controller's fetch starts cold
        started = time.monotonic()
        lock_text, folder = fetch(args.requirements)
        fetch_cold = time.monotonic() - started
        started = time.monotonic()
        fetch(args.requirements)
        fetch_warm = time.monotonic() - started
        lock = tmp_path / LOCK_FILE
        lock.write_text(lock_text)
        wheels = sorted(folder.glob("*.whl"))
        size = sum(w.stat().st_size for w in wheels)
        for source_name, source in (("index", []), ("wheelhouse", ["--no-index", "--find-links", str(folder)])):
            for installer in ("uv", "pip"):
                cache = tmp_path / f"cache-{source_name}-{installer}"
                cold = one_install(lock, installer, source, cache)
                warm = statistics.median(one_install(lock, installer, source, cache) for _ in range(args.repeat))
                rows.append((source_name, installer, cold, warm))
    print(
        f"requirements: {' '.join(args.requirements)}; {len(wheels)} wheels, {size / 1e6:.2f} MB; python {sys.version.split()[0]}"
    )
    print(f"controller fetch into the wheelhouse (pack time): cold {fetch_cold:.1f} s, warm {fetch_warm:.2f} s")
    print(f"| VM installs from | installer | cold cache | warm cache (median of {args.repeat}) |")
    print("|---|---|---|---|")
    for source_name, installer, cold, warm in rows:
        print(f"| {source_name} | {installer} | {cold:.1f} s | {warm:.1f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
