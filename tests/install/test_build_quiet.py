"""Building Ephemera's own wheel prints no deprecation (F14): setuptools deprecates
``project.license`` as a TOML table (PEP 639: an SPDX expression string, accepted from
setuptools 77, which the build system requires), and said so four times per install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # an isolated build: fetches setuptools from the package index

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_builds_without_a_deprecation_warning(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--disable-pip-version-check", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    output = done.stdout + done.stderr
    assert "deprecat" not in output.lower(), [ln for ln in output.splitlines() if "eprecat" in ln]
    assert [p.name for p in tmp_path.glob("ephemera-*.whl")]
    metadata = subprocess.run(
        [
            sys.executable,
            "-c",
            "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); print(z.read('ephemera-0.1.0.dist-info/METADATA').decode())",
            str(next(tmp_path.glob("ephemera-*.whl"))),
        ],
        capture_output=True,
        text=True,
    ).stdout
    assert "License-Expression: Apache-2.0" in metadata
