"""The Terraform functions run as Lambda runs them: AWS's runtime interface client
(``python -m awslambdaric ephemera.actions.lambda_entry.handler``) against the Runtime
API on 127.0.0.1, with the terraform engine applying the real ``aws-ec2-gpu`` stack (the
hashicorp/aws provider from the filesystem mirror, as the image carries it) and the
workspace's state in moto's S3, locked with Terraform's lock file. The apply function
and the destroy function are two execution environments with their own ``/tmp``
(``EPHEMERA_HOME``): the destroy knows the workspace only through the state bucket.

Facts: a Lambda function's only writable folder is ``/tmp``, which does not outlive the
execution environment. Terraform's S3 backend documentation (>= 1.10): with
``use_lockfile = true`` the lock is the object ``<key>.tflock``, created with a
conditional PutObject (``If-None-Match: *``, which moto's S3 honours) while an operation
runs and deleted when it ends; no DynamoDB table is involved.

This one apply also stands for the terraform engine with remote state on a laptop: a
third sandbox that never saw either function's files finds the workspace, its owner,
outputs and resources in the bucket alone.
"""

from __future__ import annotations

import json
from typing import Iterator

import pytest

from ephemera import layout
from ephemera.assembly import load_config
from ephemera.context import Context
from ephemera.engines.terraform.config import engine_config
from ephemera.engines.terraform.engine import TerraformEngine
from ephemera.deploy.bound import config_digest
from ephemera.model.runs import RunState
from tests.aws.conftest import _register_images
from tests.aws.stackfiles import GO_ENV, cli_config, plugin_mirror, stack_against
from tests.deploy.aws.conftest import FAKE_KEY_ID, FAKE_SECRET, REGION, Function, boto

pytestmark = pytest.mark.slow  # the runtime interface client's processes and a real Terraform apply

TF_BUCKET = "eph-tf-functions"


@pytest.fixture
def tf_deployed(local_config, s3_endpoint, unique_bucket, tmp_path) -> Iterator[tuple[dict, dict]]:
    """(the config, the function environment) of a deployment with the terraform engine."""
    mirror, why = plugin_mirror()
    if mirror is None:
        pytest.skip(why)
    import shutil

    if shutil.which("terraform") is None:
        pytest.skip("no terraform binary on PATH (the image's /usr/local/bin/terraform)")
    _register_images(s3_endpoint)
    stack = stack_against(s3_endpoint, tmp_path / "aws-ec2-gpu")
    data = local_config(
        storage={"backend": "aws_s3", "bucket": unique_bucket},
        aws_s3={"endpoint": s3_endpoint, "region": REGION, "access_key_id": FAKE_KEY_ID, "secret_access_key": FAKE_SECRET},
        engine={"backend": "terraform"},
        terraform={"binary": "terraform", "state": {"backend": "s3", "bucket": TF_BUCKET, "endpoint": s3_endpoint}},
        workspace={"name": "gpu", "stack": str(stack), "variables": {"image_owners": ["self"], "instance_type": "g6.xlarge"}},
    )
    for bucket in (unique_bucket, TF_BUCKET):
        try:
            boto("s3", s3_endpoint).create_bucket(Bucket=bucket)
        except boto("s3", s3_endpoint).exceptions.BucketAlreadyOwnedByYou:
            pass
    config = load_config(data).to_dict(redact=False)
    secret = f"ephemera-config-{unique_bucket}"
    boto("secretsmanager", s3_endpoint).create_secret(Name=secret, SecretString=json.dumps(config))
    env = {
        "EPHEMERA_CONFIG_SECRET": secret,
        "EPHEMERA_CONFIG_SHA256": config_digest(config),
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "TF_CLI_CONFIG_FILE": str(cli_config(tmp_path / "terraformrc", mirror)),  # the image's CLI config
        **GO_ENV,
    }
    yield config, env


def _objects(url: str) -> list[str]:
    return [o["Key"] for o in boto("s3", url).list_objects_v2(Bucket=TF_BUCKET).get("Contents", [])]


def _fresh_sandbox(config: dict, home) -> TerraformEngine:
    """The terraform engine in an Ephemera home of its own: it knows the workspace only through the bucket."""
    fresh = load_config({**config, "home": str(home)})
    return TerraformEngine(fresh, engine_config(fresh))


def _tagged(url: str, call: str, key: str, run_id: str) -> list:
    return getattr(boto("ec2", url), call)(Filters=[{"Name": "tag:ephemera:run", "Values": [run_id]}])[key]


def _vms(url: str, run_id: str) -> list[dict]:
    found = boto("ec2", url).describe_instances(Filters=[{"Name": "tag:ephemera:run", "Values": [run_id]}])
    return [i for r in found["Reservations"] for i in r["Instances"]]


@pytest.mark.timeout(1200)
def test_the_apply_function_applies_the_aws_stack_with_its_state_in_s3_and_another_destroys_it(
    tf_deployed, s3_endpoint, tmp_path, monkeypatch
):
    config, env = tf_deployed
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        monkeypatch.setenv(key, env[key])  # the third sandbox reads the state bucket with the default chain
    functions: list[Function] = []
    try:
        apply_fn = Function(
            {**env, "EPHEMERA_ACTION": "apply", "EPHEMERA_ENTRY": "direct", "EPHEMERA_HOME": str(tmp_path / "a" / "tmp")},
            tmp_path,
        )
        functions.append(apply_fn)
        outcome = apply_fn.invoke({"ephemera_kind": "manual", "idempotency_key": "tf-in-lambda"}, timeout_seconds=900, wait=900)
        assert outcome.kind == "response", (outcome, apply_fn.output())
        body = outcome.body
        assert body.get("state") == "RUNNING", (body, apply_fn.output())
        run_id, workspace = body["run_id"], body["workspace"]
        assert body["outputs"]["run_id"] == run_id
        state_key = f"ephemera/tfstate/{workspace}/terraform.tfstate"
        assert state_key in _objects(s3_endpoint) and state_key + ".tflock" not in _objects(s3_endpoint)
        assert [vm["State"]["Name"] for vm in _vms(s3_endpoint, run_id)] == ["running"]
        for secret in (FAKE_KEY_ID, FAKE_SECRET):
            assert secret not in json.dumps(body) and secret not in apply_fn.output()
        # .terraform/terraform.tfstate is the backend's own settings (bucket, key, endpoint), not the state
        local = [p for p in (tmp_path / "a").rglob("terraform.tfstate") if p.parent.name != ".terraform"]
        assert not local, f"the apply kept a local state file: {local}"
        kept = json.loads(
            boto("s3", s3_endpoint)
            .get_object(Bucket=TF_BUCKET, Key=layout.tf_variables_key("ephemera/tfstate", workspace))["Body"]
            .read()
        )
        assert "vm_boot" not in kept and kept["run_id"] == run_id, "a sensitive variable was written beside the state"
        elsewhere = _fresh_sandbox(config, tmp_path / "elsewhere")
        assert elsewhere.workspaces() == [workspace] and elsewhere.owner(workspace) == run_id
        assert elsewhere.outputs(workspace)["run_id"] == run_id
        assert any(r.startswith("aws_instance.worker") for r in elsewhere.resources(workspace))

        destroy_fn = Function(
            {**env, "EPHEMERA_ACTION": "destroy", "EPHEMERA_ENTRY": "direct", "EPHEMERA_HOME": str(tmp_path / "d" / "tmp")},
            tmp_path,
        )
        functions.append(destroy_fn)
        outcome = destroy_fn.invoke({"ephemera_kind": "manual", "run_id": run_id}, timeout_seconds=900, wait=900)
        assert outcome.kind == "response" and outcome.body.get("state") == "DESTROYED", (outcome, destroy_fn.output())
        assert {vm["State"]["Name"] for vm in _vms(s3_endpoint, run_id)} == {"terminated"}
        assert not [k for k in _objects(s3_endpoint) if k.startswith(f"ephemera/tfstate/{workspace}/")]
        for call, name in (
            ("describe_vpcs", "Vpcs"),
            ("describe_subnets", "Subnets"),
            ("describe_security_groups", "SecurityGroups"),
        ):
            assert _tagged(s3_endpoint, call, name, run_id) == [], f"{name} outlived the destroy"
        assert _fresh_sandbox(config, tmp_path / "after").workspaces() == []
        assert Context(config).ledger.get(run_id).state == RunState.DESTROYED
    finally:
        for fn in functions:
            fn.stop()
