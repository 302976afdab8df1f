"""Where an image build's cloud and engine knowledge comes from: the run stack's spec and
hooks, and the engine's spec -- never a ledger record's say.

A build record lives in the state bucket, which every run's identity can write below its
own prefixes and an operator's tools can edit: the reaper rebuilds a dead build's engine
from it, so what the record names (its image kind, its stacks folder) must only ever pick
among the shipped stacks' own builder folders.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ephemera.assembly import load_config
from ephemera.bundle import imagestacks
from ephemera.bundle.imagestacks import BUILD_EVENT, BuildPlace, build_engine, cloud_of, default_stacks, engine_for
from ephemera.errors import ImageBuildError, ImageError, ParamError
from ephemera.model.runs import RunRecord
from ephemera.stack import STACKS_DIR, stack_hooks, stack_spec
from ephemera.stack.hooks import PowerStateView, StackHooks
from tests.fakes.iam_server import start_iam_server

API_KEY = "build-specs-api-key-1234567890"


def _record(place: BuildPlace) -> RunRecord:
    return RunRecord(
        run_id="img-0123456789ab-20261207t000000-abcdef",
        workspace=place.builder_workspace,
        engine=place.engine,
        hard_deadline="2026-12-07T01:00:00+00:00",
        event={BUILD_EVENT: {"place": place.to_dict(), "stack": "aws-ec2-gpu", "lock_sha256": "0" * 64}},
    )


@pytest.fixture
def terraform_config(local_config, tmp_path):
    return load_config(
        local_config(
            engine={"backend": "terraform"},
            terraform={"state": {"backend": "s3", "bucket": "tf-states", "prefix": "ephemera/tf"}},
        )
    )


@pytest.mark.parametrize("stack", ["local", "my-stack", str(STACKS_DIR / "aws-ec2-gpu")])
def test_a_stack_without_an_image_builder_is_refused_naming_workspace_stack(stack):
    """Only a registered stack whose spec names image_kind/image_builder/image_stack has a
    cloud builder; a folder path (even to a shipped stack) names no builder of ours."""
    with pytest.raises(ImageError) as info:
        cloud_of(stack)
    assert info.value.field == "workspace.stack" and "use one of ibm-vpc-gpu, aws-ec2-gpu," in str(info.value)
    assert cloud_of("aws-ec2-gpu") == "aws" and cloud_of("ibm-vpc-gpu") == "ibm"


def test_the_terraform_engine_builds_from_the_stacks_builder_folder_with_its_own_state(terraform_config, tmp_path):
    """The terraform engine's spec: a working directory under <home>/image-workspaces, the
    builder's or the image's stack, and S3 state under <prefix>-images (never a run's key)."""
    place = BuildPlace("ibm", "terraform", "image-builder-t", "image-t", default_stacks())
    builder, imager = engine_for(terraform_config, place, "builder"), engine_for(terraform_config, place, "image")
    assert (builder.stack.folder.name, imager.stack.folder.name) == ("ibm-image-builder", "ibm-image")
    assert builder.settings.workspaces_dir == Path(terraform_config.home) / "image-workspaces"
    assert builder.settings.state.prefix == "ephemera/tf-images" and builder.settings.state.bucket == "tf-states"


def test_the_schematics_engine_needs_the_workspace_id_and_gets_none_of_the_runs_secure_variables(local_config, tmp_path):
    """Schematics cannot create a workspace: without the operator's id the build is refused,
    naming the flag; with it, the engine is that workspace, and the run workspace's secure
    variables (the operator's secrets for the run stack) are not sent to the build's."""
    config = load_config(
        local_config(
            engine={"backend": "schematics"},
            ibm={"iam_api_key": API_KEY},
            schematics={"workspace_id": "run-ws", "region": "us-south", "secure_variables": {"db_password": "s3cret-value"}},
            workspace={"name": "gpu", "stack": "ibm-vpc-gpu"},
        )
    )
    place = BuildPlace("ibm", "schematics", "image-builder-t", "image-t", default_stacks(), builder_workspace_id="b-ws")
    with pytest.raises(ParamError) as info:
        engine_for(config, place, "image")
    assert info.value.field == "--image-workspace" and "terraform/ibm-image" in str(info.value)
    engine = engine_for(config, place, "builder")
    assert engine.settings.workspace_id == "b-ws" and engine.workspace == "image-builder-t"
    assert engine.settings.secure_variables == {}


@pytest.mark.parametrize(
    "edit",
    [
        {"stacks": "/tmp/attacker-stacks"},  # a folder of the record's choosing: ignored
        {"stacks": "../../../../tmp"},
    ],
)
def test_the_reaper_builds_a_dead_builds_engine_from_the_shipped_folders_whatever_the_record_says(terraform_config, edit):
    place = dataclasses.replace(BuildPlace("aws", "terraform", "image-builder-t", "image-t", default_stacks()), **edit)
    engine = build_engine(terraform_config, _record(place))
    assert engine is not None and engine.stack.folder == (STACKS_DIR / "aws-image-builder").resolve()


@pytest.mark.parametrize("cloud", ["../../tmp/evil", "local", "gcp", ""])
def test_a_record_naming_no_registered_image_kind_gets_no_engine(terraform_config, cloud):
    """An image kind is looked up among the registered stacks' specs, never joined into a path."""
    place = BuildPlace(cloud, "terraform", "image-builder-t", "image-t", default_stacks())
    with pytest.raises(ImageError, match="no image kind a registered stack builds"):
        build_engine(terraform_config, _record(place))


def test_a_stack_whose_hooks_cannot_read_power_states_is_refused(terraform_config, monkeypatch):
    monkeypatch.setattr(imagestacks, "stack_hooks", lambda spec: StackHooks())
    place = BuildPlace("aws", "terraform", "image-builder-t", "image-t", default_stacks())
    with pytest.raises(ImageError) as info:
        imagestacks.instance_status(terraform_config, place, "i-0123", "us-east-1")
    assert info.value.field == "workspace.stack" and "instance_power_state" in str(info.value)


def test_the_build_region_defaults_to_the_builder_stacks_region():
    for cloud, stack in (("aws", "aws-image-builder"), ("ibm", "ibm-image-builder")):
        place = BuildPlace(cloud, "terraform", "b", "i", default_stacks())
        assert imagestacks.default_region(place) == stack_spec(str(STACKS_DIR / stack)).variables["region"].default


def test_the_aws_hooks_read_the_instances_state_from_ec2(monkeypatch):
    """EC2 DescribeInstances: ``Reservations[].Instances[].State.Name`` is "pending",
    "running", "stopping", "stopped", "shutting-down" or "terminated" (EC2 API reference,
    InstanceState). Against moto's EC2."""
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")  # seconds of moto's AMI catalogue, unused here
    moto = pytest.importorskip("moto")
    import boto3

    with moto.mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        hooks = stack_hooks(stack_spec("aws-ec2-gpu"))
        assert isinstance(hooks, PowerStateView)
        assert hooks.instance_power_state(None, instance, "us-east-1") == "running"
        ec2.stop_instances(InstanceIds=[instance])
        assert hooks.instance_power_state(None, instance, "us-east-1") == "stopped"


def test_the_ibm_hooks_need_the_api_key_and_never_put_it_in_an_error(local_config):
    """The VPC API is called with an IAM token for ``ibm.iam_api_key``: without a key the build
    is refused naming it; a token request IAM refuses fails retryably, without the key."""
    hooks = stack_hooks(stack_spec("ibm-vpc-gpu"))
    assert isinstance(hooks, PowerStateView)
    no_key = load_config(local_config(workspace={"name": "gpu", "stack": "ibm-vpc-gpu"}))
    with pytest.raises(ImageError) as info:
        hooks.instance_power_state(no_key, "0717_abc", "us-south", "http://127.0.0.1:9")
    assert info.value.field == "ibm.iam_api_key"
    iam = start_iam_server({"another-key"})
    try:
        config = load_config(
            local_config(ibm={"iam_api_key": API_KEY, "iam_url": iam.url}, workspace={"name": "gpu", "stack": "ibm-vpc-gpu"})
        )
        with pytest.raises(ImageBuildError) as failed:
            hooks.instance_power_state(config, "0717_abc", "us-south", "http://127.0.0.1:9")
        assert failed.value.retryable and "IAM token" in str(failed.value) and API_KEY not in str(failed.value)
    finally:
        iam.stop()
