"""A local VM of a controller installed with uv (README's `make install`: a venv without pip)
gets an environment with pip made by uv, not by ensurepip; offline with nothing in uv's
cache, ensurepip still makes it. Either way Ephemera's wheel installs into it over the
controller's packages."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig

import pytest
from uv import find_uv_bin

from ephemera.bundle.wheel import build_wheel
from ephemera.vm import bootstrap

pytestmark = pytest.mark.slow  # makes venvs and installs into them

PROBE = "import importlib.metadata as m, json, sys; print(json.dumps({'prefix': sys.prefix, 'pip': m.version('pip'), 'ephemera': str(m.distribution('ephemera').locate_file(''))}))"


@pytest.fixture(scope="module")
def controller(tmp_path_factory):
    """(a python without pip, as uv makes a venv, a bundle folder holding Ephemera's wheel)."""
    root = tmp_path_factory.mktemp("controller")
    subprocess.run([find_uv_bin(), "venv", "-q", "--python", sys.executable, str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    assert subprocess.run([str(python), "-c", "import pip"], capture_output=True).returncode != 0
    bundle = root / "bundle"
    wheel = build_wheel(bundle / "wheels")
    (bundle / "requirements.txt").write_text("")
    (bundle / "manifest.json").write_text(json.dumps({"wheel": wheel.name, "source": None}))
    return python, bundle


def _boot(python, offline: bool) -> dict:
    return {"python": str(python), "inherit_site": [sysconfig.get_paths()["purelib"]], "offline": offline, "uv": find_uv_bin()}


def _probe(python) -> dict:
    done = subprocess.run([str(python), "-c", PROBE], capture_output=True, text=True, cwd=python.parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def _install_and_read_log(tmp_path, controller, offline: bool) -> str:
    """Bootstrap a local VM's environment from ``controller``; check it holds pip and the
    Ephemera wheel (over the controller's own); its bootstrap log."""
    python, bundle = controller
    root = tmp_path / "vm"
    root.mkdir()
    found = _probe(bootstrap.install(root, _boot(python, offline=offline), bundle))
    assert found["prefix"] == str(root / "env") and found["pip"]
    assert found["ephemera"].startswith(str(root / "env")), found  # the wheel, over the controller's own
    return (root / "bootstrap.log").read_text()


def test_uv_makes_the_environment_with_pip_for_a_controller_without_pip(tmp_path, controller):
    log = _install_and_read_log(tmp_path, controller, offline=False)
    assert "creating the environment (uv)" in log and "putting pip in it (uv)" in log
    assert "-m venv" not in log and "ensurepip" not in log


def test_offline_with_an_empty_uv_cache_ensurepip_makes_it(tmp_path, monkeypatch, controller):
    """UV_OFFLINE-style: uv may use only its cache, which holds no pip; the fallback is the
    offline ensurepip, and the half-made uv environment is not left in its way."""
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "empty-cache"))
    log = _install_and_read_log(tmp_path, controller, offline=True)
    assert "putting pip in it (uv) failed" in log and "ensurepip puts pip in the environment instead" in log
    assert "creating the environment (with pip: the controller has none)" in log
