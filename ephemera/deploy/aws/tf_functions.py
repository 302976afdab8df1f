"""The plan's part for the ``terraform`` engine: the image and the functions that run Terraform.

With ``engine.backend = "terraform"`` the functions that apply or destroy a run's
workspace (:data:`~ephemera.deploy.aws.image.TERRAFORM_ACTIONS`: apply, destroy, reap,
direct and events alike) are container images (:mod:`ephemera.deploy.aws.image`); the
others (status) stay zip. The plan gains:

- the ECR repository ``<prefix>-terraform`` (tags immutable, scanned on push), whose
  repository policy lets Lambda pull the image for this account's Terraform functions
  only (``aws:sourceArn``);
- ``docker login`` with a token piped from ``aws ecr get-login-password`` (never an
  argument), ``docker build --platform linux/amd64 --provenance=false`` (Lambda takes a
  single-platform Docker v2 or OCI manifest, not the attestation index buildx makes by
  default) and ``docker push``, under a tag derived from the build context;
- each Terraform function made with ``--package-type Image --code ImageUri=...``, at
  least :data:`~ephemera.deploy.aws.image.MEMORY_FLOOR` MB and 2 GB of ``/tmp``.

The config must keep the workspaces' state in S3 (``terraform.state.backend = "s3"``):
a function's ``/tmp`` does not outlive it. An action still ends inside the function's
timeout (``aws_lambda.timeout``, at most 900 s); an apply Lambda stops at the limit
leaves a state lock and resources the reaper destroys, as on the other targets.
"""

from __future__ import annotations

import json
import shlex

from ephemera.config import Config, ConfigError
from ephemera.config.aws_lambda import AwsLambdaSection
from ephemera.deploy.aws import image as img
from ephemera.deploy.aws.commands import AwsPlan, aws_name, cli
from ephemera.deploy.aws.policies import VERSION, Account, Function, function_arn
from ephemera.deploy.steps import Step
from ephemera.engines import engine_spec
from ephemera.engines.terraform.config import TerraformSection
from ephemera.stack import STACKS

BINARIES = ("auto", "terraform")  # terraform.binary settings the image satisfies (/usr/local/bin/terraform)


def uses_image(config: Config, fn: Function) -> bool:
    """Whether ``fn`` runs from the image: an action that applies or destroys, with an engine
    that runs on the host (its tools and providers are the image's)."""
    return engine_spec(config.engine.backend).state_on_host and fn.action in img.TERRAFORM_ACTIONS


def check_terraform(config: Config) -> None:
    """ConfigError naming the key the image cannot serve: another architecture, a stack
    folder of this machine, a Terraform binary that is not the image's, local state."""
    settings = config.section(AwsLambdaSection)
    if settings.architecture != img.ARCHITECTURE:
        raise ConfigError(
            "aws_lambda.architecture",
            f"'{settings.architecture}': the Terraform image pins linux_amd64 binaries (terraform, hashicorp/aws)",
            f"use '{img.ARCHITECTURE}'",
        )
    if config.workspace.stack not in STACKS:
        raise ConfigError(
            "workspace.stack",
            f"'{config.workspace.stack}' is a folder of this machine; the image carries the shipped stacks only",
            f"use one of {', '.join(sorted(STACKS))}",
        )
    section = config.section(TerraformSection)
    if section.binary not in BINARIES:
        raise ConfigError("terraform.binary", f"'{section.binary}' is not in the image", "use 'auto' (the image's terraform)")
    if section.state.backend != "s3" or not section.state.bucket:
        raise ConfigError(
            "terraform.state.backend",
            "the functions' /tmp does not outlive an invocation, so a local state would be lost",
            "set terraform.state = {backend: s3, bucket: <bucket>} (Terraform's S3 backend with use_lockfile)",
        )


def repository_uri(account: Account, repository: str) -> str:
    return f"{account.id}.dkr.ecr.{account.region}.amazonaws.com/{repository}"


def repository_policy(account: Account, functions: list[str]) -> dict:
    """Lambda may pull the image, for this account's Terraform functions only."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "LambdaPullForTerraformFunctions",
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                "Condition": {"StringLike": {"aws:sourceArn": sorted(function_arn(account, f) for f in functions)}},
            }
        ],
    }


def image_steps(
    plan: AwsPlan, account: Account, prefix: str, context: str, tag: str, functions: list[str]
) -> tuple[list[Step], str]:
    """(the steps that build and push the image, its URI with the tag)."""
    region = account.region
    repository = aws_name(f"{prefix}-terraform").lower()
    registry = f"{account.id}.dkr.ecr.{region}.amazonaws.com"
    uri = f"{repository_uri(account, repository)}:{tag}"
    policy = plan.put("ecr/repository-policy.json", json.dumps(repository_policy(account, functions), indent=2))
    login = f"aws ecr get-login-password --region {shlex.quote(region)} | docker login --username AWS --password-stdin {registry}"
    steps = [
        Step(
            what=f"ECR repository {repository} (immutable tags, scanned on push)",
            probe=cli("ecr", "describe-repositories", "--repository-names", repository, region=region),
            create=cli(
                "ecr",
                "create-repository",
                "--repository-name",
                repository,
                "--image-tag-mutability",
                "IMMUTABLE",
                "--image-scanning-configuration",
                "scanOnPush=true",
                region=region,
            ),
        ),
        Step(
            what=f"Lambda may pull {repository} for the Terraform functions",
            create=cli(
                "ecr",
                "set-repository-policy",
                "--repository-name",
                repository,
                "--policy-text",
                f"file://{policy}",
                region=region,
            ),
        ),
        Step(what=f"docker logged in to {registry} (the token on a pipe)", create=["sh", "-c", login]),
        Step(
            what=f"the Terraform image {uri}",
            probe=cli("ecr", "describe-images", "--repository-name", repository, "--image-ids", f"imageTag={tag}", region=region),
            create=["docker", "build", "--platform", img.DOCKER_PLATFORM, "--provenance=false", "--tag", uri, context],
        ),
        Step(
            what=f"{uri} pushed",
            probe=cli("ecr", "describe-images", "--repository-name", repository, "--image-ids", f"imageTag={tag}", region=region),
            create=["docker", "push", uri],
        ),
    ]
    return steps, uri


def image_function_steps(fn: Function, settings: AwsLambdaSection, role: str, uri: str, env_file: str, region: str) -> list[Step]:
    """A Terraform function from the image: made or updated, configured, waited for."""
    config_args = [
        "--role",
        role,
        "--timeout",
        str(settings.timeout),
        "--memory-size",
        str(max(settings.memory, img.MEMORY_FLOOR)),
        "--ephemeral-storage",
        f"Size={img.EPHEMERAL_STORAGE}",
        "--environment",
        f"file://{env_file}",
    ]
    wait = Step(
        what=f"function {fn.name} ready",
        create=cli("lambda", "wait", "function-updated-v2", "--function-name", fn.name, region=region),
    )
    steps = [
        Step(
            what=f"function {fn.name} ({fn.entry}: runs {fn.action} with Terraform, image; {settings.timeout}s, no function URL)",
            probe=cli("lambda", "get-function", "--function-name", fn.name, region=region),
            update=cli("lambda", "update-function-code", "--function-name", fn.name, "--image-uri", uri, region=region),
            create=cli(
                "lambda",
                "create-function",
                "--function-name",
                fn.name,
                "--package-type",
                "Image",
                "--code",
                f"ImageUri={uri}",
                "--architectures",
                img.ARCHITECTURE,
                *config_args,
                region=region,
            ),
        ),
        wait,
        Step(
            what=f"configuration of {fn.name}",
            create=cli("lambda", "update-function-configuration", "--function-name", fn.name, *config_args, region=region),
        ),
        wait,
    ]
    return steps
