"""A cloud VM's install of a bundle's lock: from the bundle's wheelhouse (no index) against from the index.

    .venv/bin/python bench/wheelhouse_install.py [--requirements numpy scikit-learn] [--repeat 2] [--installers uv pip]

Packs what a cloud bundle carries for the set: the universal hashed lock
(:func:`ephemera.bundle.lock.compile_lock`) and the cloud VMs' wheelhouse
(:func:`ephemera.bundle.vmwheels.build`, for this interpreter's CPython so that it can be
installed here; pack time is timed too, cold and warm cache), then times a VM's install
of that lock into a fresh virtual environment, hashes required, with each installer:

- from the index: what a VM did at every boot before the wheelhouse (and what a bundle
  packed without one still does);
- from the wheelhouse: the VM's bootstrap gets the tar (here a file URL, as the localhost
  storage presigns), checks its SHA-256, checks each wheel against the lock, unpacks it
  (:func:`ephemera.vm.bootstrap.fetch_wheelhouse`), then installs with ``--no-index
  --find-links``.

"cold": an empty installer cache (a VM keeps none between runs: its real case); "warm":
the cache of the cold run. Prints a table. Needs PyPI.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ephemera.bundle import vmwheels
from ephemera.bundle.lock import compile_lock, find_uv
from ephemera.vm import bootstrap

HERE = "%d.%d" % sys.version_info[:2]


def one_install(lock: Path, installer: str, house: dict | None, cache: Path, work: Path) -> tuple[float, float]:
    """Seconds for a fresh environment with ``lock`` installed (from the wheelhouse ``house``, else
    the index), and of them those getting, checking and unpacking the wheelhouse."""
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        root, env = Path(tmp), Path(tmp) / "env"
        uv = find_uv()
        caches = {
            **os.environ,
            "UV_CACHE_DIR": str(cache / "uv"),
            "PIP_CACHE_DIR": str(cache / "pip"),
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_LINK_MODE": "copy",
        }
        started = time.monotonic()
        source: list[str] = []
        if house is not None:
            boot = {"bundle": {"key": "b", "wheelhouse": {"key": "w", "size": house["size"], "url": house["url"]}}}
            folder = bootstrap.fetch_wheelhouse(root, boot, lock.parent, house)  # type: ignore[arg-type]
            source = ["--no-index", "--find-links", str(folder)]
        fetched = time.monotonic() - started
        if installer == "uv":
            subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(env)], check=True, env=caches)
            cmd = [uv, "pip", "install", "--quiet", "--python", str(env / "bin" / "python")]
        else:
            subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, env=caches)
            cmd = [str(env / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run(cmd + ["--require-hashes", "--no-deps", *source, "-r", str(lock)], check=True, env=caches)
        return time.monotonic() - started, fetched


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requirements", nargs="*", default=["numpy", "scikit-learn"])
    parser.add_argument("--repeat", type=int, default=2, help="warm installs per row (the median is shown)")
    parser.add_argument("--installers", nargs="*", default=["uv", "pip"])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["XDG_CACHE_HOME"] = str(work / "controller-cache")  # the controller's pack starts cold
        lock_text = compile_lock(args.requirements)
        packed = []
        for _ in range(2):  # cold, then warm (the controller's download cache)
            started = time.monotonic()
            house = vmwheels.build(lock_text, [], work / "out", (HERE,))
            packed.append(time.monotonic() - started)
        lock = work / "requirements.lock"
        lock.write_text(lock_text)
        ref = {
            "lock": lock.name,
            "sha256": hashlib.sha256(house.path.read_bytes()).hexdigest(),
            "size": house.size,
            "url": house.path.as_uri(),
        }
        for source_name, source in (("index", None), ("wheelhouse", ref)):
            for installer in args.installers:
                cache = work / f"cache-{source_name}-{installer}"
                cold, fetch = one_install(lock, installer, source, cache, work)
                warm = statistics.median(one_install(lock, installer, source, cache, work)[0] for _ in range(args.repeat))
                rows.append((source_name, installer, cold, warm, fetch))
    print(
        f"requirements: {' '.join(args.requirements)}; wheelhouse of {len(house.files)} wheels, {house.size / 1e6:.1f} MB "
        f"(CPython {HERE}, glibc x86_64); python {sys.version.split()[0]}"
    )
    print(f"pack time, the wheelhouse built (download, check, tar): cold cache {packed[0]:.1f} s, warm {packed[1]:.2f} s")
    print(
        f"| VM installs from | installer | cold cache | of which the wheelhouse's fetch, checks, unpack | warm cache (median of {args.repeat}) |"
    )
    print("|---|---|---|---|---|")
    for source_name, installer, cold, warm, fetch in rows:
        print(f"| {source_name} | {installer} | {cold:.1f} s | {fetch:.1f} s | {warm:.1f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
