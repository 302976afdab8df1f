"""Prepared image records and what a VM trusts (issue 20): fast, no build, no VM.

The attack: an image record lives in the state bucket, so whoever can write the bucket can
write one. A run's VMs cannot (their prefixes grant nothing under ``images/``); the
controller's keys can. A record pointing at an arbitrary folder must never make a VM run
code from outside this home's image store, a cloud image id must have its cloud's format,
and a folder altered after its build must not be used: each such record is ignored with a
warning, and the run installs the stock way.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from ephemera import layout
from ephemera.assembly import load_config
from ephemera.bundle.image import (
    ImageRecord,
    find_image,
    image_dir,
    local_image_id,
    local_lock,
    lock_sha256,
    put_record,
    run_lock_sha256,
)
from ephemera.bundle.store import BundleRef
from ephemera.context import Context
from ephemera.errors import ImageError
from ephemera.vm.imageboot import image_site, tree_digest

REF = BundleRef(key="k", sha256="b" * 64, size=1, wheel="ephemera-0.1.0-py3-none-any.whl", requirements=["tabulate>=0.9"])


def _fake_image(folder: Path) -> Path:
    site = folder / "env" / "lib" / "python3" / "site-packages"
    site.mkdir(parents=True)
    (site / "mod.py").write_text("X = 1\n")
    return site


def _record(config, sha: str, path: Path, digest: str = "d" * 64, **over) -> ImageRecord:
    values = dict(
        id=local_image_id(sha),
        kind="local",
        stack="local",
        lock_sha256=sha,
        built_at="2026-01-01T00:00:00+00:00",
        python="py",
        size=1,
        path=str(path),
        site="env/lib/python3/site-packages",
        digest=digest,
    )
    return ImageRecord(**{**values, **over})


@pytest.fixture
def ctx(local_config):
    return Context(load_config(local_config()))


def test_the_record_key_is_built_in_layout_and_no_run_may_touch_it():
    key = layout.image_key("local", "a" * 64)
    assert key == f"ephemera/images/local/{'a' * 64}.json" and key.startswith(layout.image_prefix("local"))
    p = layout.run_prefixes("run-1", "outputs/run-1/", "b" * 64, wheelhouse_sha256="c" * 64)
    assert not [x for x in (*p.read, *p.write, *p.output) if x.startswith(layout.IMAGES) or layout.IMAGES.startswith(x)]


@pytest.mark.parametrize(
    "kind, image_id, ok",
    [
        ("aws", "ami-0123456789abcdef0", True),
        ("aws", "ami-01234567", True),
        ("aws", "ami-../../etc", False),
        ("aws", "r006-11111111-2222-3333-4444-555555555555", False),
        ("ibm", "r006-11111111-2222-3333-4444-555555555555", True),
        ("ibm", "r006-1111; rm -rf /", False),
        ("gcp", "whatever", False),
    ],
)
def test_a_cloud_image_id_must_have_its_clouds_format(kind, image_id, ok):
    raw = {
        "format": 1,
        "id": image_id,
        "kind": kind,
        "stack": "s",
        "lock_sha256": "a" * 64,
        "built_at": "t",
        "python": "p",
        "size": 1,
    }
    if ok:
        assert ImageRecord.from_dict(raw).id == image_id
    else:
        with pytest.raises(ImageError) as err:
            ImageRecord.from_dict(raw)
        assert err.value.field in ("id", "kind") and "ephemera image build" in err.value.message


def test_a_local_record_without_its_digest_is_refused():
    raw = _record(None, "a" * 64, Path("/x"), digest="").to_dict()
    with pytest.raises(ImageError, match="path, site and digest"):
        ImageRecord.from_dict(raw)


def test_the_local_lock_changes_with_the_requirements_and_the_wheelhouse(local_config):
    config = load_config(local_config())
    base = run_lock_sha256(config, REF)
    assert base == lock_sha256(local_lock(["tabulate>=0.9"], None))
    assert run_lock_sha256(config, BundleRef(**{**REF.to_dict(), "requirements": ["tabulate>=0.8"]})) != base
    assert run_lock_sha256(config, BundleRef(**{**REF.to_dict(), "wheelhouse": {"sha256": "c" * 64}})) != base


def test_a_recorded_image_in_its_store_folder_is_found(ctx):
    sha = run_lock_sha256(ctx.config, REF)
    folder = image_dir(ctx.config, "local", sha)
    _fake_image(folder)
    put_record(ctx.storage, ctx.config.state_bucket, _record(ctx.config, sha, folder))
    assert find_image(ctx.config, ctx.storage, REF).path == str(folder)


def test_a_record_pointing_outside_the_image_store_is_ignored_with_a_warning(ctx, tmp_path, caplog):
    sha = run_lock_sha256(ctx.config, REF)
    evil = tmp_path / "evil"
    _fake_image(evil)  # a folder that exists, holding someone's code
    put_record(ctx.storage, ctx.config.state_bucket, _record(ctx.config, sha, evil))
    caplog.set_level(logging.WARNING, logger="ephemera.image")
    assert find_image(ctx.config, ctx.storage, REF) is None
    assert "is not" in caplog.text and "the image store's folder" in caplog.text and "stock way" in caplog.text


def test_a_store_folder_that_is_a_link_out_of_the_store_is_ignored(ctx, tmp_path, caplog):
    sha = run_lock_sha256(ctx.config, REF)
    evil = tmp_path / "evil"
    _fake_image(evil)
    folder = image_dir(ctx.config, "local", sha)
    folder.parent.mkdir(parents=True)
    folder.symlink_to(evil)
    put_record(ctx.storage, ctx.config.state_bucket, _record(ctx.config, sha, folder))
    caplog.set_level(logging.WARNING, logger="ephemera.image")
    assert find_image(ctx.config, ctx.storage, REF) is None
    assert "leads out of the image store" in caplog.text


def test_a_record_whose_folder_is_gone_or_that_is_not_a_record_is_ignored(ctx, caplog):
    sha = run_lock_sha256(ctx.config, REF)
    caplog.set_level(logging.WARNING, logger="ephemera.image")
    put_record(ctx.storage, ctx.config.state_bucket, _record(ctx.config, sha, image_dir(ctx.config, "local", sha)))
    assert find_image(ctx.config, ctx.storage, REF) is None and "is missing" in caplog.text
    ctx.storage.put(ctx.config.state_bucket, layout.image_key("local", sha), b"{not json")
    assert find_image(ctx.config, ctx.storage, REF) is None and "is not JSON" in caplog.text
    other = _record(ctx.config, "e" * 64, image_dir(ctx.config, "local", "e" * 64)).to_dict()
    ctx.storage.put(ctx.config.state_bucket, layout.image_key("local", sha), json.dumps(other).encode())
    assert find_image(ctx.config, ctx.storage, REF) is None and "names another image" in caplog.text


def test_no_record_means_the_stock_install(ctx):
    assert find_image(ctx.config, ctx.storage, REF) is None


# -- the VM's side: the folder checked by its digest before it is used ------------------------------
def _boot(folder: Path, digest: str, site: str = "env/lib/python3/site-packages") -> dict:
    return {"image": {"id": "local-aaaaaaaaaaaa", "path": str(folder), "site": site, "digest": digest}}


def test_the_vm_uses_an_image_whose_folder_has_its_digest(tmp_path):
    folder = tmp_path / "img"
    site = _fake_image(folder)
    root = tmp_path / "vm"
    root.mkdir()
    assert image_site(root, _boot(folder, tree_digest(folder))) == site.resolve()
    assert "checked in" in (root / "bootstrap.log").read_text()


@pytest.mark.parametrize("change", ["edit", "add", "chmod", "remove"])
def test_an_image_altered_after_its_build_is_not_used(tmp_path, change):
    folder = tmp_path / "img"
    site = _fake_image(folder)
    digest = tree_digest(folder)
    if change == "edit":
        (site / "mod.py").write_text("X = 2\n")  # same size, other bytes
    elif change == "add":
        (site / "evil.pth").write_text("import os\n")
    elif change == "chmod":
        os.chmod(site / "mod.py", 0o755)
    else:
        (site / "mod.py").unlink()
    root = tmp_path / "vm"
    root.mkdir()
    assert image_site(root, _boot(folder, digest)) is None
    log = (root / "bootstrap.log").read_text()
    assert "WARNING: prepared image local-aaaaaaaaaaaa not used" in log and "altered since" in log and "stock way" in log


def test_an_image_whose_site_leads_out_of_it_or_that_is_missing_is_not_used(tmp_path):
    folder = tmp_path / "img"
    _fake_image(folder)
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "vm"
    root.mkdir()
    assert image_site(root, _boot(folder, tree_digest(folder), site="../outside")) is None
    assert "is not a folder inside it" in (root / "bootstrap.log").read_text()
    assert image_site(root, _boot(tmp_path / "gone", "d" * 64)) is None
    assert "is missing" in (root / "bootstrap.log").read_text()
    assert image_site(root, {"image": {"id": "x"}}) is None  # a document without the fields: stock, not a crash
