"""terraform/aws-image-builder and terraform/aws-image: checked against the real AWS provider's
schema (the fact table of tests/aws, hashicorp/aws 5.100.0), and a whole ``ephemera image build``
through the terraform engine with the mirrored provider against moto on 127.0.0.1: apply the
builder, wait for EC2 to report it "stopped", apply the image workspace (the AMI from it), record
the image, destroy the builder; only the AMI is left. Then ``image delete`` deregisters it.

Facts relied on (EC2 API reference and the provider's docs):

- ``InstanceInitiatedShutdownBehavior`` "stop" | "terminate": with "stop", an OS power-off
  stops the instance and keeps its EBS root volume (what the image is made from);
- ``CreateImage`` (``aws_ami_from_instance``: ``name`` and ``source_instance_id`` required)
  makes an AMI of an instance's volumes; deleting the instance later leaves the AMI;
- ``aws_ami_from_instance`` has ``tags_all``: the provider's ``default_tags`` reach the AMI;
- AMI ids are ``ami-`` and 8 or 17 hex digits (:data:`ephemera.bundle.image.IMAGE_ID_FORMATS`);
- EC2 user data is at most 16 KB before base64: the stack sends it gzip-compressed;
- ``DescribeInstances``: ``State.Name`` is one of pending | running | shutting-down |
  terminated | stopping | stopped (``InstanceState``), "stopped" once the power-off is done;
- ``DeregisterImage`` (the AMI's destroy) makes ``DescribeImages`` of it return nothing.
"""

from __future__ import annotations

import base64
import gzip
import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from ephemera.assembly import load_config
from ephemera.bundle.cloudimage import build_cloud, delete_cloud
from ephemera.bundle.image import IMAGE_ID_FORMATS, get_record, lock_sha256
from ephemera.bundle.imagestacks import BuildPlace, engine_for
from ephemera.context import Context
from ephemera.model.runs import RunState
from ephemera.stack import STACKS, stack_spec
from ephemera.storage import get_storage
from tests.aws.conftest import aws_client, aws_env, aws_mirror, moto_aws  # noqa: F401 - fixtures
from tests.aws.stackfiles import GO_ENV, cli_config, plugin_mirror, stack_against
from tests.aws.test_provider_schema import FACTS, check, load

BUILDER = Path(__file__).resolve().parents[2] / "terraform" / "aws-image-builder"
IMAGE = BUILDER.parent / "aws-image"
REQUIREMENTS = "tabulate==0.9.0 \\\n    --hash=sha256:0095b12bf5966de529c0feb1fa08671671b3368eec77d7ef7ab114be2c068b3c\n"


def test_the_builder_is_a_registered_stack_the_run_stacks_custom_image_fits():
    spec = stack_spec(str(BUILDER))  # a builder is not a run stack: not in STACKS, read by its folder
    assert "aws-image-builder" not in STACKS and "aws-image" not in STACKS and spec.folder == BUILDER
    assert {"build_id", "workspace", "lock_sha256", "requirements_lock"} == spec.setters("ephemera")
    assert {"build_id", "workspace", "lock_sha256", "source_instance_id"} == stack_spec(str(IMAGE)).setters("ephemera")
    assert spec.default_profile() in spec.prices
    # the run stack skips its setup on a custom image that has uv where this builder puts it
    run_vars = (BUILDER.parent / "aws-ec2-gpu" / "variables.tf").read_text()
    assert "/opt/ephemera/uv/bin/uv" in run_vars and "/opt/ephemera/uv/bin/uv" in (BUILDER / "cloud-init.yaml.tftpl").read_text()


def test_the_builder_matches_the_provider_schema():
    module = load(BUILDER)
    checker = check(module)
    assert not checker.errors, "\n".join(checker.errors)
    types = {(kind, rtype) for kind, rtype, _, _ in module["blocks"]}
    assert types == {("data", "aws_ami"), ("resource", "aws_instance")}
    assert checker.arguments >= 12 and checker.references >= 2, (checker.arguments, checker.references)
    image = load(IMAGE)
    image_checker = check(image)
    assert not image_checker.errors, "\n".join(image_checker.errors)
    assert {(k, t) for k, t, _, _ in image["blocks"]} == {("resource", "aws_ami_from_instance")}  # the image, alone
    # the builder and its image carry the build's tags; power-off stops (keeps the volume)
    assert all("tags_all" in FACTS["resource"][t]["attributes"] for t in ("aws_instance", "aws_ami_from_instance"))
    assert module["provider"]["aws"]["default_tags"] and image["provider"]["aws"]["default_tags"]
    builder = next(body for _, t, _, body in module["blocks"] if t == "aws_instance")
    assert builder["instance_initiated_shutdown_behavior"] == "stop"


def test_a_broken_image_block_is_reported():
    module = load(IMAGE)
    kind, rtype, name, body = next(b for b in module["blocks"] if b[1] == "aws_ami_from_instance")
    broken = {k: v for k, v in body.items() if k != "source_instance_id"}
    checker = check({**module, "blocks": [(kind, rtype, name, broken)]})
    assert any("required argument 'source_instance_id'" in e for e in checker.errors), checker.errors


def _terraform(work: Path, env: dict, *args: str) -> str:
    done = subprocess.run(["terraform", *args, "-no-color"], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow  # real applies and destroys of two workspaces against moto
def test_a_build_against_moto_records_the_image_and_leaves_only_the_image(
    aws_env,  # noqa: F811 - the fixture imported above
    local_config,
    tmp_path,
    monkeypatch,
    caplog,
):
    stacks = tmp_path / "stacks"
    for folder in (BUILDER, IMAGE):
        stack_against(aws_env["url"], stacks / folder.name, folder)
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_env["url"])  # boto3's own configuration: the power state from moto
    config = load_config(
        local_config(
            engine={"backend": "terraform"}, terraform={"binary": "terraform"}, workspace={"name": "gpu", "stack": "aws-ec2-gpu"}
        )
    )
    place = BuildPlace(
        cloud="aws", engine="terraform", builder_workspace="image-builder-t", image_workspace="image-t", stacks=str(stacks)
    )
    ec2 = aws_client(aws_env["url"], "ec2")
    seen: dict = {}

    def power_off(_seconds: float) -> None:
        """What the builder's cloud-init does last: the instance powers itself off."""
        (instance,) = [
            i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"] if i["State"]["Name"] == "running"
        ]
        raw = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")["UserData"]["Value"]
        seen["user_data"] = gzip.decompress(base64.b64decode(raw)).decode()
        seen["behavior"] = ec2.describe_instance_attribute(
            InstanceId=instance["InstanceId"], Attribute="instanceInitiatedShutdownBehavior"
        )["InstanceInitiatedShutdownBehavior"]["Value"]
        ec2.stop_instances(InstanceIds=[instance["InstanceId"]])

    caplog.set_level(logging.INFO)
    storage = get_storage(config)
    record, built = build_cloud(
        config, storage, place, REQUIREMENTS, ["tabulate==0.9.0"], poll=0.0, sleep=power_off, variables={"image_owners": ["self"]}
    )
    lock = lock_sha256(REQUIREMENTS)
    assert built and IMAGE_ID_FORMATS["aws"].match(record.id) and record.kind == "aws" and record.lock_sha256 == lock
    assert get_record(storage, config.state_bucket, "aws-ec2-gpu", lock) == record

    # the builder got the lock (hash-checked install) and no key; power-off stops it
    assert base64.b64encode(REQUIREMENTS.encode()).decode() in seen["user_data"] and "--require-hashes" in seen["user_data"]
    assert "shutdown -h now" in seen["user_data"] and "testing" not in seen["user_data"] and seen["behavior"] == "stop"

    # only the AMI is left: available, tagged with the lock; the builder instance terminated
    (image,) = ec2.describe_images(ImageIds=[record.id])["Images"]
    assert image["State"] == "available" and {t["Key"]: t["Value"] for t in image["Tags"]}["ephemera:lock"] == lock
    mine = [{"Name": "tag:ephemera:image-build", "Values": [record.build_id]}]  # the moto server may be shared
    left = [i for r in ec2.describe_instances(Filters=mine)["Reservations"] for i in r["Instances"]]
    assert [i["State"]["Name"] for i in left] == ["terminated"]  # terminated instances stay visible a while
    builder = engine_for(config, place, "builder")
    assert builder.resources("image-builder-t") == []
    imager = engine_for(config, place, "image")
    assert [r.split(":")[0] for r in imager.resources("image-t")] == ["aws_ami_from_instance.image"]
    build = Context(config, storage=storage).ledger.get(record.build_id)
    assert build.state == RunState.DESTROYED and build.resources == []
    state = (tmp_path / "home" / "image-workspaces" / "image-t" / "terraform.tfstate").read_text()
    assert "testing" not in state  # no key (moto's is "testing") in the image's state

    # image delete: the workspace (the AMI deregistered), then the record
    delete_cloud(config, storage, record, place)
    assert record.id not in [i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]]
    assert get_record(storage, config.state_bucket, "aws-ec2-gpu", lock) is None


@pytest.mark.slow  # terraform init and validate
def test_terraform_validate_the_builder_with_the_real_provider(tmp_path):
    mirror, why = plugin_mirror()
    if mirror is None or shutil.which("terraform") is None:
        pytest.skip(why or "no terraform binary on PATH")
    env = {
        "TF_CLI_CONFIG_FILE": str(cli_config(tmp_path / "rc", mirror)),
        "CHECKPOINT_DISABLE": "1",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        **GO_ENV,
    }
    for folder in (BUILDER, IMAGE):
        work = tmp_path / folder.name
        shutil.copytree(folder, work)
        _terraform(work, env, "init", "-backend=false", "-input=false")
        _terraform(work, env, "validate")
