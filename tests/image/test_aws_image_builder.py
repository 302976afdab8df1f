"""terraform/aws-image-builder: checked against the real AWS provider's schema (the fact table
of tests/aws, hashicorp/aws 5.100.0) and applied for real with the mirrored provider against
moto on 127.0.0.1, as the builder runs it: apply, the instance powers itself off, apply again
with ``create_image``, take the AMI out of the workspace's state, destroy the rest.

Facts relied on (EC2 API reference and the provider's docs):

- ``InstanceInitiatedShutdownBehavior`` "stop" | "terminate": with "stop", an OS power-off
  stops the instance and keeps its EBS root volume (what the image is made from);
- ``CreateImage`` (``aws_ami_from_instance``: ``name`` and ``source_instance_id`` required)
  makes an AMI of an instance's volumes; deleting the instance later leaves the AMI;
- ``aws_ami_from_instance`` has ``tags_all``: the provider's ``default_tags`` reach the AMI;
- AMI ids are ``ami-`` and 8 or 17 hex digits (:data:`ephemera.bundle.image.IMAGE_ID_FORMATS`);
- EC2 user data is at most 16 KB before base64: the stack sends it gzip-compressed.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ephemera.bundle.image import IMAGE_ID_FORMATS
from ephemera.stack import STACKS, stack_spec
from tests.aws.conftest import aws_client, aws_env, aws_mirror, moto_aws  # noqa: F401 - fixtures
from tests.aws.stackfiles import cli_config, plugin_mirror, stack_against
from tests.aws.test_provider_schema import FACTS, check, load

BUILDER = Path(__file__).resolve().parents[2] / "terraform" / "aws-image-builder"
LOCK = "ab" * 32
REQUIREMENTS = "tabulate==0.9.0 \\\n    --hash=sha256:0095b12bf5966de529c0feb1fa08671671b3368eec77d7ef7ab114be2c068b3c\n"


def test_the_builder_is_a_registered_stack_the_run_stacks_custom_image_fits():
    spec = stack_spec(str(BUILDER))  # a builder is not a run stack: not in STACKS, read by its folder
    assert "aws-image-builder" not in STACKS and spec.folder == BUILDER
    assert {"build_id", "workspace", "lock_sha256", "requirements_lock", "create_image"} == spec.setters("ephemera")
    assert spec.default_profile() in spec.prices
    # the run stack skips its setup on a custom image that has uv where this builder puts it
    run_vars = (BUILDER.parent / "aws-ec2-gpu" / "variables.tf").read_text()
    assert "/opt/ephemera/uv/bin/uv" in run_vars and "/opt/ephemera/uv/bin/uv" in (BUILDER / "cloud-init.yaml.tftpl").read_text()


def test_the_builder_matches_the_provider_schema():
    module = load(BUILDER)
    checker = check(module)
    assert not checker.errors, "\n".join(checker.errors)
    types = {(kind, rtype) for kind, rtype, _, _ in module["blocks"]}
    assert types == {("data", "aws_ami"), ("resource", "aws_instance"), ("resource", "aws_ami_from_instance")}
    assert checker.arguments >= 15 and checker.references >= 3, (checker.arguments, checker.references)
    # the builder and its image carry the build's tags; power-off stops (keeps the volume)
    assert all("tags_all" in FACTS["resource"][t]["attributes"] for k, t in types if k == "resource")
    assert module["provider"]["aws"]["default_tags"]
    builder = next(body for _, t, _, body in module["blocks"] if t == "aws_instance")
    assert builder["instance_initiated_shutdown_behavior"] == "stop"


def test_a_broken_builder_block_is_reported():
    module = load(BUILDER)
    kind, rtype, name, body = next(b for b in module["blocks"] if b[1] == "aws_ami_from_instance")
    broken = {k: v for k, v in body.items() if k != "source_instance_id"}
    checker = check({**module, "blocks": [(kind, rtype, name, broken)]})
    assert any("required argument 'source_instance_id'" in e for e in checker.errors), checker.errors


def _terraform(work: Path, env: dict, *args: str) -> str:
    done = subprocess.run(["terraform", *args, "-no-color"], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _tf_env() -> dict:
    keep = ("TF_CLI_CONFIG_FILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "CHECKPOINT_DISABLE": "1", **{k: os.environ[k] for k in keep}}


@pytest.mark.slow  # two real applies and a destroy against moto
def test_a_build_against_moto_leaves_only_the_image(aws_env, tmp_path):  # noqa: F811 - the fixture imported above
    work = stack_against(aws_env["url"], tmp_path / "builder", BUILDER)
    variables = {
        "build_id": "img-20261207T100000Z-0123456789abcdef",
        "workspace": "gpu",
        "lock_sha256": LOCK,
        "requirements_lock": REQUIREMENTS,
        "image_owners": ["self"],
    }
    (work / "build.auto.tfvars.json").write_text(json.dumps(variables))
    env = _tf_env()
    ec2 = aws_client(aws_env["url"], "ec2")
    _terraform(work, env, "init", "-input=false")
    _terraform(work, env, "apply", "-auto-approve", "-input=false")
    outputs = json.loads(_terraform(work, env, "output", "-json"))
    (instance_id,) = outputs["instance_ids"]["value"]
    assert outputs["image_id"]["value"] == "" and outputs["source_image"]["value"] in aws_env["images"].values()

    # what the builder instance got: the newest stock image, stop on power-off, IMDSv2, tags
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags["ephemera:lock"] == LOCK and tags["ephemera:image-build"] == variables["build_id"]
    behavior = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior")
    assert behavior["InstanceInitiatedShutdownBehavior"]["Value"] == "stop"
    raw = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")["UserData"]["Value"]
    user_data = gzip.decompress(base64.b64decode(raw)).decode()
    assert base64.b64encode(REQUIREMENTS.encode()).decode() in user_data and "--require-hashes" in user_data
    assert "shutdown -h now" in user_data and "aws_secret_access_key" not in user_data.lower()

    ec2.stop_instances(InstanceIds=[instance_id])  # the build script's power-off
    variables["create_image"] = True
    (work / "build.auto.tfvars.json").write_text(json.dumps(variables))
    _terraform(work, env, "apply", "-auto-approve", "-input=false")
    image_id = json.loads(_terraform(work, env, "output", "-json"))["image_id"]["value"]
    assert IMAGE_ID_FORMATS["aws"].match(image_id), image_id

    _terraform(work, env, "state", "rm", "aws_ami_from_instance.image[0]")  # the image outlives the build
    _terraform(work, env, "destroy", "-auto-approve", "-input=false")

    (image,) = ec2.describe_images(ImageIds=[image_id])["Images"]
    image_tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
    assert image["State"] == "available" and image_tags["ephemera:lock"] == LOCK
    left = [
        i
        for r in ec2.describe_instances(Filters=[{"Name": "tag:ephemera:lock", "Values": [LOCK]}])["Reservations"]
        for i in r["Instances"]
    ]
    assert [i["State"]["Name"] for i in left] == ["terminated"]  # terminated instances stay visible a while


@pytest.mark.slow  # terraform init and validate
def test_terraform_validate_the_builder_with_the_real_provider(tmp_path):
    mirror, why = plugin_mirror()
    if mirror is None or shutil.which("terraform") is None:
        pytest.skip(why or "no terraform binary on PATH")
    work = tmp_path / "builder"
    shutil.copytree(BUILDER, work)
    env = {
        "TF_CLI_CONFIG_FILE": str(cli_config(tmp_path / "rc", mirror)),
        "CHECKPOINT_DISABLE": "1",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
    }
    _terraform(work, env, "init", "-backend=false", "-input=false")
    _terraform(work, env, "validate")
