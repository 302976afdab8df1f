"""A cloud VM's install step over a prepared image (issue 20): the image's environment as the base.

The image builders (terraform/*-image-builder) install the bundle's ``requirements.lock``
with uv into ``/opt/ephemera/image/env`` and only then write the lock's SHA-256 to
``/opt/ephemera/image/lock.sha256``. The boot document of a run whose lock has an image
names it (:func:`ephemera.bundle.image.boot_image`: ``env`` and ``lock_sha256``). Here the
bootstrap's own install step runs against a fake image in a temporary folder, with tiny
hand-made wheels and uv offline: with an intact image only Ephemera's wheel is installed
and the wheelhouse is never fetched; a line the image lacks comes from the wheelhouse; a
missing, half-built or other-lock image falls back to the stock install with a warning.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from ephemera.bundle.image import CLOUD_IMAGE_ENV, ImageRecord, boot_image, cloud_lock_sha256
from ephemera.vm import bootstrap

UV = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
PY = "%d.%d" % sys.version_info[:2]
pytestmark = pytest.mark.skipif(not Path(UV).exists(), reason="uv is not installed beside this Python")


def _wheel(folder: Path, name: str, version: str, module: str) -> Path:
    """A minimal pure-Python wheel (PEP 427 layout: the module, METADATA, WHEEL, RECORD)."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{module}.py": f"NAME = {name!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(
        f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(c.encode()).digest()).rstrip(b'=').decode()},{len(c)}\n"
        for p, c in files.items()
    )
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for p, c in files.items():
            zf.writestr(p, c)
        zf.writestr(f"{dist}/RECORD", record + f"{dist}/RECORD,,\n")
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def vm(tmp_path):
    """A bundle (Ephemera's wheel + a lock of one package, its wheelhouse beside it), an
    image environment built from that lock as the builder does, and the VM's boot document."""
    bundle = tmp_path / "bundle"
    (bundle / "wheels").mkdir(parents=True)
    own = _wheel(bundle / "wheels", "ephemera", "0.0.1", "ephemera_fake_own")
    dep = _wheel(tmp_path, "tinydep", "1.0", "tinydep")
    lock = bundle / "requirements.lock"
    lock.write_text(f"tinydep==1.0 --hash=sha256:{_sha(dep)}\n")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        tar.add(dep, arcname=dep.name)
    house = tmp_path / "wheelhouse.tar"
    house.write_bytes(raw.getvalue())
    manifest = {
        "wheel": own.name,
        "wheel_sha256": _sha(own),
        "lock": "requirements.lock",
        "vm_wheelhouse": {"lock": "requirements.lock", "sha256": _sha(house), "pythons": [PY]},
        "source": None,
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    # the builder: uv venv, the lock installed with hashes required, then the marker
    image = tmp_path / "opt-ephemera-image"
    env = image / "env"
    bootstrap.run(tmp_path, [UV, "venv", "--quiet", "--python", sys.executable, str(env)], "image venv")
    bootstrap.run(
        tmp_path,
        [UV, "pip", "install", "--python", str(env / "bin" / "python"), "--no-index", "--find-links", str(tmp_path)]
        + ["--require-hashes", "-r", str(lock)],
        "image install",
    )
    sha = cloud_lock_sha256(lock.read_bytes())
    (image / "lock.sha256").write_text(sha + "\n")
    record = ImageRecord(
        id="ami-0123456789abcdef0", kind="aws", stack="aws-ec2-gpu", lock_sha256=sha, built_at="t", python="p", size=1
    )
    doc = boot_image(record)
    assert doc["env"] == CLOUD_IMAGE_ENV and doc["lock_sha256"] == sha and doc["path"] is None
    boot = {
        "python": sys.executable,
        "uv": UV,
        "image": {**doc, "env": str(env)},  # the image's path, relocated into the temporary folder
        "bundle": {"key": "k", "sha256": "s", "wheelhouse": {"key": "w", "url": house.resolve().as_uri()}},
    }
    root = tmp_path / "root"
    root.mkdir()
    return {"root": root, "boot": boot, "bundle": bundle, "image": image, "env": env}


def _site(env: Path) -> Path:
    return next(env.glob("lib/python*/site-packages"))


def _installed(env: Path) -> set[str]:
    return {p.name.split("-")[0] for p in _site(env).glob("*.dist-info")}


def test_an_intact_image_gets_only_ephemeras_wheel_and_no_wheelhouse(vm):
    dep_file = _site(vm["env"]) / "tinydep.py"
    before = dep_file.stat()
    python = bootstrap.install(vm["root"], vm["boot"], vm["bundle"])
    env = vm["root"] / "env"
    assert env.is_symlink() and env.resolve() == vm["env"].resolve() and python == env / "bin" / "python"
    assert _installed(vm["env"]) == {"ephemera", "tinydep"}
    assert dep_file.stat().st_mtime_ns == before.st_mtime_ns and dep_file.stat().st_ino == before.st_ino, "tinydep reinstalled"
    assert not (vm["root"] / "wheelhouse").exists(), "the wheelhouse was fetched though the image had the whole lock"
    log = (vm["root"] / bootstrap.LOG).read_text()
    assert "installing what the image lacks" in log and "WARNING" not in log


def test_a_lock_line_the_image_lacks_is_installed_from_the_wheelhouse(vm):
    shutil.rmtree(next(_site(vm["env"]).glob("tinydep-*.dist-info")))
    (_site(vm["env"]) / "tinydep.py").unlink()
    bootstrap.install(vm["root"], vm["boot"], vm["bundle"])
    assert (vm["root"] / "env").is_symlink() and _installed(vm["env"]) == {"ephemera", "tinydep"}
    assert (vm["root"] / "wheelhouse").is_dir()
    assert "the image lacks lines of the lock" in (vm["root"] / bootstrap.LOG).read_text()


@pytest.mark.parametrize(
    "spoil, why",
    [
        (lambda vm: (vm["image"] / "lock.sha256").unlink(), "No such file"),  # a build that never finished
        (lambda vm: (vm["image"] / "lock.sha256").write_text("0" * 64), "names another lock"),
        (lambda vm: shutil.rmtree(vm["env"]), "env/bin/python"),  # no image environment on this machine
        (lambda vm: vm["boot"]["image"].update(lock_sha256="a" * 64), "was built from lock aaaaaaaaaaaa"),
        (lambda vm: vm["boot"]["image"].pop("env"), "'env'"),
    ],
    ids=["no-marker", "other-marker", "no-env", "other-lock", "no-env-field"],
)
def test_a_missing_or_other_image_falls_back_to_the_stock_install_with_a_warning(vm, spoil, why):
    spoil(vm)
    bootstrap.install(vm["root"], vm["boot"], vm["bundle"])
    env = vm["root"] / "env"
    assert not env.is_symlink() and _installed(env) == {"ephemera", "tinydep"}, "the stock install did not complete"
    log = (vm["root"] / bootstrap.LOG).read_text()
    assert "WARNING: prepared image ami-0123456789abcdef0 not used" in log and why in log


def test_a_reboot_reinstall_over_the_image_replaces_the_link(vm):
    """The bootstrap runs at every boot until the run ends: a second install finds its own link."""
    bootstrap.install(vm["root"], vm["boot"], vm["bundle"])
    bootstrap.install(vm["root"], vm["boot"], vm["bundle"])
    assert (vm["root"] / "env").is_symlink() and vm["env"].is_dir() and _installed(vm["env"]) == {"ephemera", "tinydep"}


@pytest.mark.slow
def test_the_rendered_user_data_boots_over_the_image(vm, tmp_path):
    """As the VM runs it: the ibm-vpc-gpu user-data module rendered (Terraform, offline) with
    ``custom_image = true`` and a boot document naming the image, then the bootstrap that
    the user_data carries, loaded from it, installs over the fake image."""
    import gzip
    import importlib.util

    import yaml

    from tests.ibm.tfmodule import apply_module

    doc = {**vm["boot"], "run_id": "gpu-1", "worker": 0}
    doc.pop("uv")
    doc.pop("python")
    doc["image"] = {**doc["image"], "env": CLOUD_IMAGE_ENV}  # as prepare_boot writes it
    outputs, _state = apply_module(
        "user-data",
        {
            "worker": 0,
            "run_id": "gpu-1",
            "vm_boot": base64.b64encode(json.dumps(doc).encode()).decode(),
            "bootstrap_script": base64.b64encode(gzip.compress(Path(bootstrap.__file__).read_bytes())).decode(),
            "profile": "gx3-16x80x1l4",
            "nvidia_driver": "550",
            "custom_image": True,
            "hard_deadline": "2026-12-07T12:00:00+00:00",
            "hard_timeout_seconds": 3600,
            "heartbeat_interval": 30,
        },
        tmp_path / "render",
    )
    files = {f["path"]: f for f in yaml.safe_load(outputs["user_data"])["write_files"]}
    boot = json.loads(base64.b64decode(files["/etc/ephemera/boot.json"]["content"]))
    # the custom image has the driver and uv where the image builders put them: no setup script
    assert boot["setup"] is None and boot["uv"] == "/opt/ephemera/uv/bin/uv" and boot["python"] == "/usr/bin/python3"
    assert boot["image"] == doc["image"]
    source = tmp_path / "bootstrap_rendered.py"
    source.write_bytes(gzip.decompress(base64.b64decode(files["/usr/local/lib/ephemera/bootstrap.py"]["content"])))
    spec = importlib.util.spec_from_file_location("bootstrap_rendered", source)
    rendered = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rendered)
    # this machine is not the VM: the image, uv and python live elsewhere here
    boot.update(uv=UV, python=sys.executable, image={**boot["image"], "env": str(vm["env"])})
    rendered.install(vm["root"], boot, vm["bundle"])
    assert (vm["root"] / "env").is_symlink() and _installed(vm["env"]) == {"ephemera", "tinydep"}
    assert not (vm["root"] / "wheelhouse").exists()
