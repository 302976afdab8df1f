"""The throwaway venv the source-only packages are built in holds pip and the build tools
their ``setup.py`` needs (``setuptools<70``, ``wheel``), whether uv makes it (fast) or,
without uv, ``python -m venv`` does."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ephemera.bundle import sdists


PROBE = (
    "import importlib.metadata as m, json, sys; "
    "print(json.dumps({'prefix': sys.prefix, 'pip': m.version('pip'), 'setuptools': m.version('setuptools'), 'wheel': m.version('wheel')}))"
)


def _tools(venv) -> dict:
    done = subprocess.run([str(venv / "bin" / "python"), "-c", PROBE], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.slow  # installs from the package index into a fresh venv
def test_the_build_venv_holds_pip_and_the_build_tools(tmp_path):
    sdists.build_venv(tmp_path / "venv")
    tools = _tools(tmp_path / "venv")
    assert tools["prefix"] == str(tmp_path / "venv")
    assert int(tools["setuptools"].split(".")[0]) < 70, tools
    pip = subprocess.run([str(tmp_path / "venv" / "bin" / "python"), "-m", "pip", "--version"], capture_output=True, text=True)
    assert pip.returncode == 0 and str(tmp_path / "venv") in pip.stdout, pip.stdout + pip.stderr


def test_a_uv_that_fails_falls_back_to_python_m_venv(tmp_path, monkeypatch):
    """uv offline without pip in its cache cannot seed the venv; the build then gets one the
    way an installation without uv does (``python -m venv``, then pip installs the tools),
    and nothing uv left half-made stays in the way."""
    ran = []
    monkeypatch.setattr(sdists, "_uv", lambda: "/bin/false")
    monkeypatch.setattr(sdists, "run_pip", lambda cmd, what: ran.append(list(cmd)))
    (tmp_path / "venv").mkdir()
    (tmp_path / "venv" / "half-made").write_text("")
    sdists.build_venv(tmp_path / "venv")
    python = str(tmp_path / "venv" / "bin" / "python")
    assert ran == [
        [sys.executable, "-m", "venv", str(tmp_path / "venv")],
        [python, "-m", "pip", "--disable-pip-version-check", "-q", "install", *sdists.BUILD_TOOLS],
    ]
    assert not (tmp_path / "venv").exists()
