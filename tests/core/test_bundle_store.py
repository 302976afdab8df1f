"""Published run bundles (``workload.bundle``): what a deployed action names instead of
packing, on the local storage; and ``ephemera bundle pack|publish``."""

from __future__ import annotations

import io
import json
import tarfile
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from ephemera import layout
from ephemera.actions import apply
from ephemera.bundle.pack import pack, read_bundle
from ephemera.bundle.store import bound_config, publish, stored
from ephemera.cli import main as cli_main
from ephemera.assembly import load_config
from ephemera.context import Context
from ephemera.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train-digits"


@pytest.fixture
def config(local_config):
    return load_config(
        local_config(workload={"source": str(EXAMPLE), "entry": "train:main", "requirements": str(EXAMPLE / "requirements.txt")})
    )


def test_a_published_bundle_is_found_by_its_hash_with_what_it_holds(config, tmp_path):
    ctx = Context(config)
    bundle = pack(config, tmp_path)
    first = publish(ctx.storage, config.state_bucket, bundle)
    assert not first.reused and first.key == layout.bundle_key(bundle.sha256)
    found = stored(ctx.storage, config.state_bucket, bundle.sha256)
    assert found == type(first)(**{**first.to_dict(), "reused": True})
    assert found.requirements == ["scikit-learn>=1.3"] and found.source_files == 3  # not ephemera.yaml
    assert publish(ctx.storage, config.state_bucket, bundle).reused  # equal content is stored once


def test_a_bundle_that_is_not_there_or_is_cut_short_names_workload_bundle(config, tmp_path):
    ctx = Context(config)
    with pytest.raises(ConfigError) as missing:
        stored(ctx.storage, config.state_bucket, "0" * 64)
    assert missing.value.field == "workload.bundle" and "ephemera bundle publish" in missing.value.message
    bundle = pack(config, tmp_path)
    publish(ctx.storage, config.state_bucket, bundle)
    ctx.storage.put(config.state_bucket, layout.bundle_key(bundle.sha256), b"truncated")
    with pytest.raises(ConfigError, match="holds 9 bytes"):
        stored(ctx.storage, config.state_bucket, bundle.sha256)
    for manifest in (b"[1, 2]", b"{not json", b'{"size": 9, "manifest": {"wheel": "x"}}'):
        ctx.storage.put(config.state_bucket, layout.bundle_manifest_key(bundle.sha256), manifest)
        with pytest.raises(ConfigError, match="not one Ephemera wrote"):
            stored(ctx.storage, config.state_bucket, bundle.sha256)


@pytest.mark.parametrize("value", ["abc", "g" * 64, "0" * 63, 5])
def test_the_config_takes_only_a_sha256(local_config, value):
    with pytest.raises(ConfigError) as err:
        load_config(local_config(workload={"bundle": value}))
    assert err.value.field == "workload.bundle"


def test_a_pinned_bundle_that_was_never_published_fails_the_apply_and_applies_nothing(local_config):
    config = load_config(local_config(workload={"bundle": "ab" * 32}))
    result = apply.main({"config": config.to_dict(redact=False)})
    assert result["state"] in ("APPLY_FAILED", "DESTROYED") and "workload.bundle" in result["error"]["message"], result
    workspaces = Context(config).config.home / "workspaces"
    assert not list(workspaces.glob("*/terraform.tfstate")), "nothing may be applied without the bundle"


def test_bound_config_drops_the_operator_paths(config, tmp_path):
    bundle = pack(config, tmp_path)
    bound = bound_config(config, bundle.sha256, bundle.manifest["requirements"])
    assert bound.workload.bundle == bundle.sha256 and bound.workload.source is None
    assert bound.workload.requirements == ["scikit-learn>=1.3"]
    assert config.workload.source == str(EXAMPLE)  # the operator's config is not changed


def _cli(*argv: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli_main(list(argv)) == 0
    return out.getvalue()


def test_cli_pack_then_publish_the_archive_gives_the_same_hash(config, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.to_dict(redact=False)))
    packed = _cli("--config", str(path), "bundle", "pack", "--out", str(tmp_path / "b")).split()
    sha256, archive = packed[0], packed[1]
    assert Path(archive).name == f"{sha256}.tar.gz"
    published = _cli("--config", str(path), "bundle", "publish", archive).splitlines()
    assert published[-1] == sha256 and "set workload.bundle" in published[0]
    assert _cli("--config", str(path), "bundle", "publish").splitlines()[-1] == sha256  # packing is reproducible
    assert _cli("--config", str(path), "bundle", "publish", archive, "--expect", sha256).splitlines()[-1] == sha256
    assert cli_main(["--config", str(path), "bundle", "publish", archive, "--expect", "0" * 64]) == 2  # not the bound one
    assert stored(Context(config).storage, config.state_bucket, sha256).source_files == 3  # not ephemera.yaml


def test_publishing_a_file_that_is_no_bundle_is_refused(config, tmp_path):
    junk = tmp_path / "junk.tar.gz"
    with tarfile.open(junk, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("hello.txt"))
    for path in (junk, tmp_path / "missing.tar.gz"):
        with pytest.raises(ConfigError) as err:
            read_bundle(path)
        assert err.value.field == "bundle" and "ephemera bundle pack" in err.value.message


def test_workload_paths_are_checked_at_load_unless_a_published_bundle_is_named(local_config, tmp_path):
    with pytest.raises(ConfigError) as source:
        load_config(local_config(workload={"source": str(tmp_path / "nowhere")}))
    assert source.value.field == "workload.source" and "ephemera deploy" in source.value.message
    with pytest.raises(ConfigError) as reqs:
        load_config(local_config(workload={"requirements": str(tmp_path / "requirements.txt")}))
    assert reqs.value.field == "workload.requirements"
    pinned = load_config(local_config(workload={"source": str(tmp_path / "nowhere"), "bundle": "ab" * 32}))
    assert pinned.workload.bundle == "ab" * 32  # nothing is packed, so the folder is not needed


def test_relative_workload_paths_are_read_from_the_config_files_folder(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "train.py").write_text("def main(ctx):\n    return {}\n")
    (folder / "config.yaml").write_text("workload: {source: code, entry: 'train:main'}\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(folder / "config.yaml").workload.source == str(folder / "code")


def test_an_apply_failing_after_the_boot_documents_leaves_no_credentials_object(
    local_config, s3_endpoint, unique_bucket, monkeypatch
):
    """prepare_boot writes each VM's one-time credentials object (S3 keys); a failure right
    after it (here: the engine cannot be built) ends the run DESTROYED with those objects gone."""
    from ephemera.assembly import get_storage

    config = load_config(
        local_config(
            storage={"backend": "aws_s3", "bucket": unique_bucket},
            aws_s3={
                "endpoint": s3_endpoint,
                "region": "us-east-1",
                "access_key_id": "AKIDTEST",
                "secret_access_key": "s3cr3t-test-key",
            },
        )
    )
    get_storage(config).create_bucket(unique_bucket)
    written = []
    real_put = type(get_storage(config)).put

    def spying_put(self, bucket, key, data, *args, **kwargs):
        if key.startswith(layout.CREDENTIALS):
            written.append(key)
        return real_put(self, bucket, key, data, *args, **kwargs)

    monkeypatch.setattr(type(get_storage(config)), "put", spying_put)
    monkeypatch.setattr(Context, "engine", property(lambda self: (_ for _ in ()).throw(RuntimeError("no engine here"))))
    result = apply.main({"config": config.to_dict(redact=False)})
    assert result["state"] == "DESTROYED" and "no engine here" in result["error"]["message"], result
    assert written, "the run's VMs were given credentials objects"
    assert not list(get_storage(config).list(unique_bucket, layout.CREDENTIALS)), "a VM's storage keys were left behind"


def test_relative_workload_paths_mean_the_same_files_in_every_copy_of_the_config(tmp_path, monkeypatch):
    """`ephemera up` and `ephemera invoke` hand each action a copy of the config as a dict:
    relative paths are made absolute at load, so the copy works from any directory."""
    folder = tmp_path / "project"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "train.py").write_text("def main(ctx):\n    return {}\n")
    (folder / "requirements.txt").write_text("six\n")
    (folder / "config.yaml").write_text("workload: {source: code, requirements: requirements.txt, entry: 'train:main'}\n")
    monkeypatch.chdir(tmp_path)
    loaded = load_config(folder / "config.yaml")
    assert loaded.workload.source == str(folder / "code")
    assert loaded.workload.requirements == str(folder / "requirements.txt")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    copy = load_config(loaded.to_dict(redact=False))
    assert copy.workload.source == str(folder / "code")


def test_a_published_bundle_without_a_lock_is_refused_for_a_cloud_stack_before_any_apply(local_config, tmp_path):
    """Issue 16, finding 7: a bundle published before locks existed (or packed for the
    local stack) would be refused by a cloud VM's bootstrap; the apply says so first."""
    from ephemera.bundle.store import run_bundle

    local = load_config(local_config())
    bundle = pack(local, tmp_path, lock=False)
    publish(Context(local).storage, local.state_bucket, bundle)
    assert run_bundle(load_config(local_config(workload={"bundle": bundle.sha256})), Context(local).storage).locked is False
    cloud = load_config(local_config(workspace={"name": "ws", "stack": "ibm-vpc-gpu"}, workload={"bundle": bundle.sha256}))
    with pytest.raises(ConfigError) as err:
        run_bundle(cloud, Context(local).storage)
    assert err.value.field == "workload.bundle" and "no hashed lock" in err.value.message
