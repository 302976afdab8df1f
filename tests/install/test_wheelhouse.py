"""The local VMs' wheelhouse (issue 18, "local VMs rehearse the cloud"): what the VM
accepts from it, where it is stored, and who may read it.

The VM's side is the stdlib bootstrap: the wheelhouse tar must have the SHA-256 the
bundle's manifest records (the bundle itself is checked against its own hash first),
and every wheel in it a SHA-256 that ``wheelhouse.lock`` pins, before anything is
installed. pip's hash-checking mode then refuses any other file at install time
("Secure installs": with ``--require-hashes`` a file whose digest matches none of its
requirement's hashes is an error), so the explicit check is the early, named refusal."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from ephemera import layout
from ephemera.assembly import load_config
from ephemera.bundle import wheelhouse
from ephemera.bundle.pack import pack, read_bundle
from ephemera.bundle.store import publish, stored
from ephemera.cli.bundle import cmd_pack
from ephemera.context import Context
from ephemera.errors import ConfigError
from ephemera.vm import bootstrap

WHEEL = "tiny_pkg-1.0-py3-none-any.whl"
GOOD = b"PK good wheel bytes"


def _tar(members: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in members.items():
            wheelhouse.tar_member(tar, name, data)
    return raw.getvalue()


def _vm(tmp_path: Path, served: bytes, manifest_sha: str) -> tuple[Path, dict, Path, dict]:
    """A VM root, its boot document (the wheelhouse served by a file URL), an unpacked bundle
    whose wheelhouse.lock pins GOOD, and that bundle's manifest naming ``manifest_sha``."""
    store = tmp_path / "bucket" / "house.tar"
    store.parent.mkdir()
    store.write_bytes(served)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "wheelhouse.lock").write_text(f"tiny-pkg==1.0 \\\n    --hash=sha256:{hashlib.sha256(GOOD).hexdigest()}\n")
    manifest = {"local_wheelhouse": {"lock": "wheelhouse.lock", "sha256": manifest_sha, "size": len(served)}}
    boot = {
        "bundle": {
            "key": "b",
            "sha256": "0" * 64,
            "size": 1,
            "wheelhouse": {"key": "ephemera/wheelhouses/x.tar", "sha256": manifest_sha, "url": store.as_uri()},
        }
    }
    root = tmp_path / "vm"
    root.mkdir()
    return root, boot, bundle, manifest


def test_the_vm_unpacks_a_wheelhouse_whose_wheels_the_lock_pins(tmp_path):
    tar = _tar({WHEEL: GOOD})
    root, boot, bundle, manifest = _vm(tmp_path, tar, hashlib.sha256(tar).hexdigest())
    folder = bootstrap.fetch_wheelhouse(root, boot, bundle, manifest["local_wheelhouse"])
    assert [p.name for p in folder.iterdir()] == [WHEEL] and (folder / WHEEL).read_bytes() == GOOD


def test_a_wheelhouse_swapped_in_the_bucket_is_refused(tmp_path):
    """Whoever can write the state bucket replaces the tar: its hash is not the one the
    (hash-checked) bundle's manifest names."""
    good = _tar({WHEEL: GOOD})
    root, boot, bundle, manifest = _vm(tmp_path, _tar({WHEEL: b"PK evil"}), hashlib.sha256(good).hexdigest())
    with pytest.raises(bootstrap.BootError, match="wheelhouse .* has SHA-256 .*: refusing it"):
        bootstrap.fetch_wheelhouse(root, boot, bundle, manifest["local_wheelhouse"])
    assert not any((root / "wheelhouse").glob("*.whl"))


@pytest.mark.parametrize(
    "members",
    [
        {WHEEL: b"PK tampered wheel"},  # a wheel the lock does not pin
        {WHEEL: GOOD, "extra-9.9-py3-none-any.whl": b"PK extra"},  # a wheel added beside the pinned one
        {"../" + WHEEL: GOOD},  # a path out of the folder
        {"setup.py": b"import os"},  # not a wheel
    ],
)
def test_a_tampered_wheel_is_refused_before_anything_is_installed(tmp_path, members):
    """Even a tar that matches the manifest's hash (a bundle packed from a poisoned cache)
    holds nothing the lock does not pin."""
    tar = _tar(members)
    root, boot, bundle, manifest = _vm(tmp_path, tar, hashlib.sha256(tar).hexdigest())
    with pytest.raises(bootstrap.BootError, match="(does not pin|is not a plain wheel file): refusing"):
        bootstrap.fetch_wheelhouse(root, boot, bundle, manifest["local_wheelhouse"])
    assert not (tmp_path / WHEEL).exists() and not (root / "wheelhouse").exists()  # nothing written


def test_a_boot_document_without_the_wheelhouse_fails_clearly(tmp_path):
    tar = _tar({WHEEL: GOOD})
    root, boot, bundle, manifest = _vm(tmp_path, tar, hashlib.sha256(tar).hexdigest())
    del boot["bundle"]["wheelhouse"]
    with pytest.raises(bootstrap.BootError, match="no URL for '\\(none in the boot document\\)'"):
        bootstrap.fetch_wheelhouse(root, boot, bundle, manifest["local_wheelhouse"])


def test_the_run_prefixes_let_vms_read_the_wheelhouse_and_nothing_more():
    prefixes = layout.run_prefixes("r-1", "outputs/r-1/", "ab" * 32, "cd" * 32)
    key = layout.wheelhouse_key("cd" * 32)
    assert key in prefixes.read and key.startswith("ephemera/wheelhouses/")
    assert not any(p.startswith("ephemera/wheelhouses") or p == "" for p in prefixes.write + prefixes.output)
    assert not any(k.startswith("ephemera/wheelhouses") for k in layout.run_prefixes("r-1", "outputs/r-1/", "ab" * 32).read)


def test_offline_the_preflight_names_exactly_what_the_wheelhouse_cannot_hold(no_index):
    from packaging.requirements import Requirement

    missing = wheelhouse.unsatisfied(
        [Requirement("pyyaml>=6"), Requirement("tabulate>=0.9"), Requirement('nope>=1; sys_platform == "nonexistent"')]
    )
    assert [str(r) for r in missing] == ["tabulate>=0.9"]
    [problem] = wheelhouse.problems(missing)
    assert problem.field == "workload.requirements" and "'tabulate>=0.9'" in problem.message
    assert "-m pip install 'tabulate>=0.9'" in problem.message and "reach the package index" in problem.message


@pytest.mark.slow  # resolves and downloads one small wheel from PyPI
def test_the_wheelhouse_is_stored_once_per_content_hash(local_config, tmp_path):
    """Two bundles (different source) needing the same missing requirement, each packed
    and published twice: one wheelhouse object in the bucket, under its content hash."""
    ctx = None
    refs = []
    for n in (1, 2):
        src = tmp_path / f"src{n}"
        src.mkdir()
        (src / "job.py").write_text(f"def main(ctx):\n    return {n}\n")
        config = load_config(local_config(workload={"source": str(src), "entry": "job:main", "requirements": ["tabulate>=0.9"]}))
        ctx = ctx or Context(config)
        for _ in range(2):
            bundle = pack(config, tmp_path / "out")
            refs.append(publish(ctx.storage, config.state_bucket, bundle))
    houses = {json.dumps(r.wheelhouse, sort_keys=True) for r in refs}
    assert len(houses) == 1 and len({r.sha256 for r in refs}) == 2
    house = refs[0].wheelhouse
    assert house["key"] == layout.wheelhouse_key(house["sha256"])
    stored_keys = [i.key for i in ctx.storage.list(config.state_bucket, "ephemera/wheelhouses/")]
    assert stored_keys == [house["key"]]
    data = ctx.storage.get(config.state_bucket, house["key"])
    assert hashlib.sha256(data).hexdigest() == house["sha256"]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert [m.name for m in tar.getmembers()][0].startswith("tabulate-")
    assert refs[1].reused and stored(ctx.storage, config.state_bucket, refs[0].sha256).wheelhouse == house
    ctx.storage.delete(config.state_bucket, house["key"])  # a bundle without its wheelhouse is refused at apply
    with pytest.raises(ConfigError, match="the wheelhouse of bundle .* is not \\(complete\\) in the state bucket"):
        stored(ctx.storage, config.state_bucket, refs[0].sha256)
    # the archive `ephemera bundle pack` wrote is read back with its wheelhouse beside it
    again = read_bundle(bundle.path)
    assert again.wheelhouse is not None and again.wheelhouse.name == f"wheelhouse-{house['sha256']}.tar"
    out = io.StringIO()
    assert cmd_pack(config, str(tmp_path / "by-hand"), out) == 0  # `ephemera bundle pack` says to keep both
    assert f"wheelhouse-{house['sha256']}.tar" in out.getvalue() and "keep the two together" in out.getvalue()
    again.wheelhouse.unlink()
    with pytest.raises(ConfigError, match="needs its wheelhouse .* beside it"):
        read_bundle(bundle.path)
