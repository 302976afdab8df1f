"""A fresh environment with pip in it: ``python -m venv`` (ensurepip) against uv.

    .venv/bin/python bench/venv_make.py [--repeat 3]

Two places make one per use: the throwaway venv the source-only packages are built in
(:func:`ephemera.bundle.sdists.build_venv`: pip and ``setuptools<70``, ``wheel``) and a local
VM's environment when the controller has no pip (a venv made by uv, README's Makefile
does not, a user of ``uv venv`` does: :mod:`ephemera.vm.localinstall`). Both used
``python -m venv``, whose ensurepip installs and byte-compiles pip every time; uv makes the
venv and links pip from its cache. Times each way (wall and CPU seconds of the children),
prints a table with the median. uv's way needs pip in uv's cache or the index.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ephemera.bundle.lock import find_uv


def _timed(commands: list[list[str]]) -> tuple[float, float]:
    """(wall, children's CPU) seconds of running ``commands`` one after another."""
    before, start = os.times(), time.perf_counter()
    for command in commands:
        subprocess.run(command, check=True, capture_output=True)
    after = os.times()
    return time.perf_counter() - start, (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )


def ways(uv: str, venv: Path) -> dict[str, list[list[str]]]:
    python = str(venv / "bin" / "python")
    return {
        "python -m venv (ensurepip)": [[sys.executable, "-m", "venv", str(venv)]],
        "uv venv + uv pip install pip": [
            [uv, "venv", "-q", "--python", sys.executable, str(venv)],
            [uv, "pip", "install", "-q", "--python", python, "pip"],
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    uv = find_uv()
    rows = []
    with tempfile.TemporaryDirectory(prefix="venv-bench-") as tmp:
        venv = Path(tmp) / "venv"
        for name in ways(uv, venv):
            walls, cpus = [], []
            for _ in range(args.repeat):
                shutil.rmtree(venv, ignore_errors=True)
                wall, cpu = _timed(ways(uv, venv)[name])
                walls.append(wall)
                cpus.append(cpu)
            rows.append((name, statistics.median(walls), statistics.median(cpus), max(walls)))
    print(f"{'way':32} {'wall p50 s':>10} {'cpu p50 s':>10} {'wall max s':>10}")
    for name, wall, cpu, worst in rows:
        print(f"{name:32} {wall:10.2f} {cpu:10.2f} {worst:10.2f}")
    print(f"(median of {args.repeat}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
