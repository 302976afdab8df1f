"""Issue 20, "a wheelhouse beside the bundle": a cloud VM installs the bundle's lock from the
wheels stored once per content hash in the state bucket, never from a public index.

Contracts relied on (pip's docs, "Secure installs" / hash-checking mode; uv follows it with
``--require-hashes``): every requirement is pinned with ``==`` and carries ``--hash``, and a
file whose digest matches none of its requirement's hashes is refused. ``--no-index``
with ``--find-links <dir>`` makes the installer look only in that folder. ``pip download
--platform/--python-version/--implementation/--abi`` needs ``--only-binary :all:`` and
chooses wheels for that target, not for the running interpreter; pip widens only the
legacy manylinux aliases (manylinux2014 -> 2010 -> 1), so every ``manylinux_2_N`` tag up to
the images' glibc is named. What the VM trusts is the lock inside the hash-checked bundle,
never the tar: the bucket's writer cannot change the bundle's hash the boot document names.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from ephemera.bundle import vmwheels
from ephemera.bundle.wheelhouse import tar_member
from ephemera.errors import ConfigError
from ephemera.vm import bootstrap

WHEEL = "tiny_pkg-1.0-py3-none-any.whl"
GOOD = b"PK good wheel bytes"
LOCK = f"tiny-pkg==1.0 \\\n    --hash=sha256:{hashlib.sha256(GOOD).hexdigest()}\n"


def _tar(members: dict[str, bytes], links: dict[str, tuple[bytes, str]] | None = None) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in members.items():
            tar_member(tar, name, data)
        for name, (kind, target) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tar.addfile(info)
    return raw.getvalue()


def _vm(tmp_path: Path, served: bytes, manifest_sha: str | None = None) -> tuple[Path, dict, Path, dict]:
    """A cloud VM's root and boot document (the wheelhouse served from the "bucket" by file
    URL), and an unpacked bundle whose requirements.lock pins GOOD and whose manifest names
    the wheelhouse ``manifest_sha`` (default: the served tar's own hash)."""
    store = tmp_path / "bucket" / "house.tar"
    store.parent.mkdir()
    store.write_bytes(served)
    bundle = tmp_path / "bundle"
    (bundle / "wheels").mkdir(parents=True)
    (bundle / "wheels" / "ephemera-0-py3-none-any.whl").write_bytes(b"PK")
    (bundle / "requirements.lock").write_text(LOCK)
    sha = manifest_sha or hashlib.sha256(served).hexdigest()
    house = {
        "lock": "requirements.lock",
        "sha256": sha,
        "size": len(served),
        "files": [WHEEL],
        "pythons": ["%d.%d" % sys.version_info[:2]],
    }
    manifest = {
        "wheel": "ephemera-0-py3-none-any.whl",
        "wheel_sha256": "0" * 64,
        "lock": "requirements.lock",
        "vm_wheelhouse": house,
    }
    boot = {
        "python": sys.executable,
        "bundle": {
            "key": "b",
            "sha256": "0" * 64,
            "wheelhouse": {"key": "ephemera/wheelhouses/x.tar", "sha256": sha, "url": store.as_uri()},
        },
    }
    root = tmp_path / "vm"
    root.mkdir()
    return root, boot, bundle, manifest


def test_the_lock_is_split_per_target_by_its_markers():
    h1, h2, h3 = ("a" * 64, "b" * 64, "c" * 64)
    lock = (
        f"numpy==2.2.6 ; python_full_version < '3.11' \\\n    --hash=sha256:{h1}\n"
        f"numpy==2.3.0 ; python_full_version >= '3.11' \\\n    --hash=sha256:{h2}\n"
        f"colorama==0.4.6 ; sys_platform == 'win32' \\\n    --hash=sha256:{h3}\n"
        f"ibm-cos-sdk==2.14.0 \\\n    --hash=sha256:{h3}\n"
    )
    old = vmwheels.target_lock(lock, "3.10", skip={"ibm-cos-sdk"})
    new = vmwheels.target_lock(lock, "3.12", skip=set())
    assert old == f"numpy==2.2.6 --hash=sha256:{h1}\n"  # markers dropped: pip would judge them for this interpreter
    assert new == f"numpy==2.3.0 --hash=sha256:{h2}\nibm-cos-sdk==2.14.0 --hash=sha256:{h3}\n"


def test_a_wheel_the_lock_does_not_pin_is_refused_at_pack_time(tmp_path):
    wheel = tmp_path / WHEEL
    wheel.write_bytes(b"PK poisoned cache")
    with pytest.raises(ConfigError, match="does not pin") as info:
        vmwheels.check_pinned([wheel], LOCK)
    assert info.value.field == "workload.requirements" and "clear the cache folder" in str(info.value)


def test_the_vm_unpacks_and_installs_from_the_wheelhouse_only(tmp_path, monkeypatch):
    root, boot, bundle, manifest = _vm(tmp_path, _tar({WHEEL: GOOD}))
    commands = []
    monkeypatch.setattr(bootstrap, "run", lambda root, cmd, what, env=None: commands.append(cmd))
    bootstrap.install_locked(root, boot, bundle, manifest, root / "env", installer="pip")
    install = commands[-1]
    assert (root / "wheelhouse" / WHEEL).read_bytes() == GOOD
    assert "--no-index" in install and install[install.index("--no-index") + 2] == str(root / "wheelhouse")
    assert "--require-hashes" in install and "--no-deps" in install


def test_a_bundle_packed_before_the_wheelhouse_still_installs_from_the_index_and_says_so(tmp_path, monkeypatch):
    root, boot, bundle, manifest = _vm(tmp_path, b"")
    del manifest["vm_wheelhouse"]
    commands = []
    monkeypatch.setattr(bootstrap, "run", lambda root, cmd, what, env=None: commands.append(cmd))
    bootstrap.install_locked(root, boot, bundle, manifest, root / "env", installer="pip")
    assert "--no-index" not in commands[-1] and "--require-hashes" in commands[-1]
    assert "packed without a wheelhouse: installing its lock from the package index" in (root / "bootstrap.log").read_text()


def test_a_vm_whose_python_the_wheelhouse_lacks_is_told_which_it_has(tmp_path, monkeypatch):
    root, boot, bundle, manifest = _vm(tmp_path, _tar({WHEEL: GOOD}))
    manifest["vm_wheelhouse"]["pythons"] = ["3.10", "3.12"] if sys.version_info[:2] != (3, 10) else ["3.12"]
    monkeypatch.setattr(bootstrap, "run", lambda *a, **k: pytest.fail("nothing may be installed"))
    with pytest.raises(
        bootstrap.BootError, match=r"Python 3\.\d+ is not one the bundle's wheelhouse has wheels for .*boot an image"
    ):
        bootstrap.install_locked(root, boot, bundle, manifest, root / "env")


def test_a_tampered_wheelhouse_is_refused_before_it_is_unpacked(tmp_path, monkeypatch):
    """Whoever can write the bucket replaces the tar: its hash is not the one the bundle's manifest names."""
    good = _tar({WHEEL: GOOD})
    root, boot, bundle, manifest = _vm(tmp_path, _tar({WHEEL: b"PK evil"}), hashlib.sha256(good).hexdigest())
    monkeypatch.setattr(tarfile, "open", lambda *a, **k: pytest.fail("a tar of the wrong hash was opened"))
    with pytest.raises(bootstrap.BootError, match="wheelhouse .* has SHA-256 .*: refusing it"):
        bootstrap.fetch_wheelhouse(root, boot, bundle, manifest["vm_wheelhouse"])
    assert not (root / "wheelhouse").exists()


@pytest.mark.parametrize(
    "members, links",
    [
        ({"../" + WHEEL: GOOD}, None),  # a path out of the folder
        ({"/tmp/" + WHEEL: GOOD}, None),  # an absolute path
        ({"sub/" + WHEEL: GOOD}, None),  # a folder inside
        ({WHEEL: GOOD}, {"evil-1.0-py3-none-any.whl": (tarfile.SYMTYPE, "/etc/passwd")}),  # a symlink
        ({WHEEL: GOOD}, {"evil-1.0-py3-none-any.whl": (tarfile.LNKTYPE, WHEEL)}),  # a hard link
        ({WHEEL: GOOD, ".hidden.whl": GOOD}, None),  # a dot file
        ({WHEEL: GOOD, "setup.py": b"import os"}, None),  # not a wheel
    ],
)
def test_a_wheelhouse_with_a_path_escape_or_a_link_is_refused_and_nothing_written(tmp_path, members, links):
    """Even with the hash the manifest names (a bundle packed from a poisoned cache), a member
    that is not a plain wheel file in the top folder refuses the whole tar, before any write."""
    root, boot, bundle, manifest = _vm(tmp_path, _tar(members, links))
    with pytest.raises(bootstrap.BootError, match="is not a plain wheel file: refusing the wheelhouse"):
        bootstrap.fetch_wheelhouse(root, boot, bundle, manifest["vm_wheelhouse"])
    assert not (root / "wheelhouse").exists() and not (tmp_path / WHEEL).exists()


def test_a_wheel_swapped_in_a_tar_whose_hash_was_recomputed_is_refused(tmp_path):
    """The attacker writes the bucket and recomputes the tar's hash (here: the manifest names
    it, as if the manifest could be changed too): the lock inside the bundle does not pin the
    swapped wheel, so the VM refuses it before the installer runs."""
    root, boot, bundle, manifest = _vm(tmp_path, _tar({WHEEL: b"PK swapped"}))
    with pytest.raises(bootstrap.BootError, match=f"wheelhouse member {WHEEL} has SHA-256 .*requirements.lock does not pin"):
        bootstrap.fetch_wheelhouse(root, boot, bundle, manifest["vm_wheelhouse"])
    assert not (root / "wheelhouse").exists()


@pytest.mark.slow  # installs into a fresh environment
@pytest.mark.timeout(600)
@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_swapped_wheel_past_the_vms_check_is_refused_by_require_hashes(tmp_path, monkeypatch, installer):
    """The last wall on its own: were the VM's per-wheel check skipped, the installer, run
    with the bootstrap's flags over the folder, refuses a wheel whose bytes the lock does not pin."""
    from ephemera.bundle.lock import find_uv
    from ephemera.bundle.wheel import build_wheel

    house = tmp_path / "house"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(house), "six==1.16.0"],
        check=True,
        capture_output=True,
    )
    six = next(house.glob("six-*.whl"))
    root, boot, bundle, manifest = _vm(tmp_path, b"")
    wheel = build_wheel(bundle / "wheels")
    manifest.update(wheel=wheel.name, wheel_sha256=hashlib.sha256(wheel.read_bytes()).hexdigest())
    (bundle / "requirements.lock").write_text(
        f"six==1.16.0 \\\n    --hash=sha256:{hashlib.sha256(six.read_bytes()).hexdigest()}\n"
    )
    data = bytearray(six.read_bytes())
    data[len(data) // 2] ^= 0x01
    six.write_bytes(bytes(data))
    monkeypatch.setattr(bootstrap, "fetch_wheelhouse", lambda *a: house)
    for name in ("UV_CACHE_DIR", "PIP_CACHE_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name))
    boot["uv"] = find_uv()
    with pytest.raises(bootstrap.BootError, match="installing the bundle's lock"):
        bootstrap.install_locked(root, boot, bundle, manifest, root / "env", installer=installer)
    log = (root / "bootstrap.log").read_text()
    assert "--no-index" in log and "hash" in log.lower().split("installing the bundle's lock", 1)[1]
    assert not list((root / "env").glob("lib/python*/site-packages/six.py"))


def _dead_index(monkeypatch) -> None:
    """No index reachable: every index variable points at a closed port on 127.0.0.1."""
    dead = "http://127.0.0.1:9/simple"
    for name in ("PIP_INDEX_URL", "UV_INDEX_URL", "UV_DEFAULT_INDEX"):
        monkeypatch.setenv(name, dead)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)


@pytest.mark.slow  # resolves and downloads from PyPI at pack time, installs into a fresh environment
@pytest.mark.timeout(900)
def test_a_cloud_vm_installs_the_bundle_from_the_bucket_with_no_index_reachable(tmp_path, local_config, monkeypatch):
    """Packed for a cloud stack with a small real requirement: the wheelhouse is stored once
    per content hash (a second pack and publish uploads no wheelhouse again), and the VM's
    bootstrap installs from it into a fresh environment while every index is a dead port;
    the workload then imports the requirement."""
    from ephemera.assembly import load_config
    from ephemera.bundle.pack import pack
    from ephemera.bundle.store import publish
    from ephemera.context import Context
    from ephemera import layout

    src = tmp_path / "src"
    src.mkdir()
    (src / "job.py").write_text("import tabulate\n\ndef main(ctx):\n    return tabulate.tabulate([[1, 2]])\n")
    config = load_config(local_config(workload={"source": str(src), "entry": "job:main", "requirements": ["tabulate>=0.9"]}))
    ctx = Context(config)
    bucket = config.state_bucket
    puts: list[str] = []
    put = ctx.storage.put
    monkeypatch.setattr(ctx.storage, "put", lambda b, key, data, *a, **k: (puts.append(key), put(b, key, data, *a, **k))[1])
    here = "%d.%d" % sys.version_info[:2]
    refs = [publish(ctx.storage, bucket, pack(config, tmp_path / f"out{n}", lock=True, vm_pythons=(here,))) for n in (1, 2)]
    house = refs[0].wheelhouse
    assert refs[1].wheelhouse == house and house["key"] == layout.wheelhouse_key(house["sha256"])
    assert [k for k in puts if k.startswith(layout.WHEELHOUSES)] == [house["key"]]  # uploaded once
    assert [i.key for i in ctx.storage.list(bucket, layout.WHEELHOUSES)] == [house["key"]]
    data = ctx.storage.get(bucket, house["key"])
    assert hashlib.sha256(data).hexdigest() == house["sha256"]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = [m.name for m in tar.getmembers()]
    assert any(n.startswith("tabulate-") for n in names) and any(n.startswith("pydantic_core-") for n in names)

    _dead_index(monkeypatch)
    for name in ("UV_CACHE_DIR", "PIP_CACHE_DIR"):  # a VM boots with empty caches
        monkeypatch.setenv(name, str(tmp_path / name))
    url = ctx.storage.presign(bucket, refs[0].key, "GET", 600)
    ref = {"key": refs[0].key, "sha256": refs[0].sha256, "size": refs[0].size, "url": url}
    ref["wheelhouse"] = {**house, "url": ctx.storage.presign(bucket, house["key"], "GET", 600)}
    root = tmp_path / "vm"
    root.mkdir()
    boot = {"python": sys.executable, "uv": bootstrap.find_uv({}), "bundle": ref}
    python = bootstrap.install(root, boot, bootstrap.fetch_bundle(root, boot))
    log = (root / "bootstrap.log").read_text()
    assert "--no-index" in log and "--require-hashes" in log and "fetching wheelhouse" in log
    probe = subprocess.run(
        [str(python), "-c", "import job, ephemera.vm.agent; print(job.main(None))"], capture_output=True, text=True
    )
    assert probe.returncode == 0 and "1" in probe.stdout, probe.stderr[-2000:]
