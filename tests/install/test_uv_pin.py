"""Issue 16, finding 7 (the boot): cloud-init used to install the latest ``uv`` from PyPI,
unpinned and unhashed, as root, on every VM. It now installs one version, and pip's
hash-checking mode refuses any file whose SHA-256 is not one of the pinned wheels'
(manylinux x86_64 and aarch64)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from ephemera.bundle.delivery import bootstrap_script
from tests.ibm.tfmodule import apply_module

PIN_FILE = "/etc/ephemera/uv-requirements.txt"


@pytest.fixture(scope="module")
def user_data(tmp_path_factory) -> str:
    boot = base64.b64encode(json.dumps({"run_id": "r1", "worker": 0}).encode()).decode()
    outputs, _ = apply_module(
        "user-data",
        {
            "worker": 0,
            "run_id": "r1",
            "vm_boot": boot,
            "bootstrap_script": bootstrap_script(),
            "profile": "gx3-16x80x1l4",
            "nvidia_driver": "550",
            "custom_image": False,
            "hard_deadline": "2026-12-07T03:00:00Z",
            "hard_timeout_seconds": 14400,
            "heartbeat_interval": 30,
        },
        tmp_path_factory.mktemp("render") / "user-data",
    )
    return outputs["user_data"]


def _files(text: str) -> dict:
    return {f["path"]: f for f in yaml.safe_load(text)["write_files"]}


def pinned(text: str) -> tuple[str, list[str]]:
    """(version, hashes) of the uv requirement the VM installs."""
    pin = _files(text)[PIN_FILE]["content"]
    lines = [ln for ln in pin.replace("\\\n", " ").splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert len(lines) == 1, lines
    version = re.match(r"\s*uv==(\d+\.\d+\.\d+)\s", lines[0])
    assert version, lines[0]
    return version.group(1), re.findall(r"--hash=sha256:([0-9a-f]{64})", lines[0])


def test_uv_is_installed_by_version_and_hash_only(user_data):
    version, hashes = pinned(user_data)
    assert len(set(hashes)) == 2
    setup = _files(user_data)["/usr/local/sbin/ephemera-setup"]["content"]
    installs = [ln for ln in setup.splitlines() if "pip install" in ln]
    assert installs, setup
    for line in installs:
        assert "--require-hashes" in line and f"-r {PIN_FILE}" in line and "--only-binary=:all:" in line, line
    assert not re.search(r"pip install[^\n]* uv\b", setup), "uv by name, unpinned"


def test_the_rendered_user_data_is_valid_cloud_config(user_data, tmp_path):
    """cloud-init's own schema check (``cloud-init schema -c``), where cloud-init is installed."""
    path = tmp_path / "user-data"
    path.write_text(user_data)
    if shutil.which("cloud-init"):
        cmd = ["cloud-init", "schema", "-c", str(path)]
    else:
        try:
            import cloudinit  # noqa: F401
        except ImportError:
            pytest.skip("cloud-init is not installed here")
        cmd = [sys.executable, "-m", "cloudinit.cmd.main", "schema", "-c", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0 and "Valid cloud-config" in done.stdout, done.stdout + done.stderr


@pytest.mark.slow  # downloads both uv wheels from PyPI
@pytest.mark.timeout(600)
def test_the_pinned_hashes_are_those_of_the_published_wheels(user_data, tmp_path):
    """The pin's provenance, re-derived: PyPI's wheels of that version for manylinux
    x86_64 and aarch64, and nothing else, have the pinned SHA-256s."""
    import hashlib

    version, hashes = pinned(user_data)
    found = set()
    for platform in ("manylinux_2_17_x86_64", "manylinux_2_17_aarch64"):
        dest = tmp_path / platform
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                f"uv=={version}",
                "--no-deps",
                "--only-binary=:all:",
                "--platform",
                platform,
                "--python-version",
                "3.10",
                "--implementation",
                "py",
                "-d",
                str(dest),
            ],
            check=True,
            capture_output=True,
        )
        found |= {hashlib.sha256(w.read_bytes()).hexdigest() for w in dest.glob("*.whl")}
    assert found == set(hashes)
