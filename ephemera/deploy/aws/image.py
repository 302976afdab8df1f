"""The container image of the functions that run Terraform (apply, destroy, reap).

With the ``terraform`` engine the run workspaces are applied inside these Lambda
functions, in-process, by the same engine code as on a laptop: Lambda runs a function
for up to 15 minutes and takes container images of up to 10 GB, while a ``.zip``
package may hold at most 250 MB unzipped, and the ``hashicorp/aws`` provider binary
alone is about 700 MB. The image (``<out>/aws/image/``):

- ``FROM public.ecr.aws/lambda/python:3.12`` (AWS's base image with the runtime
  interface client), x86_64 only (the pinned binaries are linux_amd64);
- the ``terraform`` binary, downloaded with ``ADD --checksum=sha256:...`` so the build
  fails on any other file (the SHA-256 HashiCorp publishes in
  ``terraform_<v>_SHA256SUMS``), unpacked with Python's ``zipfile``;
- the ``hashicorp/aws`` provider in a filesystem mirror (``/opt/terraform/plugins``),
  fetched by ``terraform providers mirror``, which checks the registry's signed
  checksums and the ``h1:`` hash pinned in the rendered ``.terraform.lock.hcl``;
  ``terraformrc`` (``TF_CLI_CONFIG_FILE``) installs that provider from the mirror only,
  so no function ever downloads a provider;
- Ephemera from its own wheel (``wheels/``: it carries the stacks) with the ``aws`` and
  ``cli`` extras, and the source-only packages installed as on the other targets:
  ``setuptools<70`` and ``wheel`` first, then ``--no-build-isolation``
  (``python-terraform``; the IBM SDKs come as wheels built beforehand, when needed);
- ``CMD`` the Lambda handler, :data:`HANDLER`.

No secret is in the image or its build: the config stays in Secrets Manager.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ephemera.bundle.sdists import Say, build_sdist_wheels
from ephemera.bundle.wheel import build_wheel

TERRAFORM_VERSION = "1.11.4"  # >= 1.10: the S3 backend's use_lockfile
# sha256 of terraform_1.11.4_linux_amd64.zip, as HashiCorp's terraform_1.11.4_SHA256SUMS lists it
TERRAFORM_SHA256 = "1ce994251c00281d6845f0f268637ba50c0005657eb3cf096b92f753b42ef4dc"
AWS_PROVIDER = "registry.terraform.io/hashicorp/aws"
AWS_PROVIDER_VERSION = "5.100.0"
# the provider's linux_amd64 package hash (Terraform's "h1:" scheme), as `terraform providers lock` computes it
AWS_PROVIDER_H1 = "h1:edXOJWE4ORX8Fm+dpVpICzMZJat4AX0VRCAy/xkcOc0="
BASE_IMAGE = "public.ecr.aws/lambda/python:3.12"
ARCHITECTURE = "x86_64"  # Lambda's name for linux/amd64, the one platform the pins above name
DOCKER_PLATFORM = "linux/amd64"
MIRROR = "/opt/terraform/plugins"
CLI_CONFIG = "/opt/terraform/terraformrc"
HANDLER = "ephemera.actions.lambda_entry.handler"
TERRAFORM_ACTIONS = ("apply", "destroy", "reap")  # the actions that run the engine's apply or destroy
MEMORY_FLOOR = 2048  # MB: the provider's schema load is CPU-bound, and Lambda gives CPU by memory
EPHEMERAL_STORAGE = 2048  # MB of /tmp: working directories, .terraform (the provider is linked, not copied)
IBM_WHEELS = "wheels/*.whl"

DOCKERFILE = """# syntax=docker/dockerfile:1.7
# Ephemera's Terraform functions (apply, destroy, reap) for AWS Lambda: Terraform runs
# in-process in the function; the workspaces' state is in S3 (native S3 locking).
FROM {base}

# terraform, pinned: ADD fails the build when the file's SHA-256 differs
ADD --checksum=sha256:{tf_sha256} https://releases.hashicorp.com/terraform/{tf_version}/terraform_{tf_version}_linux_amd64.zip /tmp/terraform.zip
RUN python3 -m zipfile -e /tmp/terraform.zip /usr/local/bin/ && chmod 0755 /usr/local/bin/terraform && rm /tmp/terraform.zip

# the AWS provider in a filesystem mirror, checked against the pinned lock file's hash
COPY providers/ /opt/terraform/lock/
RUN terraform -chdir=/opt/terraform/lock providers mirror -platform=linux_amd64 {mirror}
COPY terraformrc {cli_config}
ENV TF_CLI_CONFIG_FILE={cli_config} CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0

# Ephemera from its wheel; the source-only packages built without build isolation
COPY wheels/ /tmp/wheels/
RUN pip install --no-cache-dir "setuptools<70" wheel
RUN pip install --no-cache-dir --no-build-isolation --find-links /tmp/wheels --target "${{LAMBDA_TASK_ROOT}}" "/tmp/wheels/{wheel}[aws,cli]"{extra} && rm -rf /tmp/wheels

CMD ["{handler}"]
"""

PROVIDERS_TF = f"""terraform {{
  required_providers {{
    aws = {{
      source  = "hashicorp/aws"
      version = "{AWS_PROVIDER_VERSION}"
    }}
  }}
}}
"""

LOCK_HCL = f"""# The provider the image mirrors, pinned by its linux_amd64 package hash.
provider "{AWS_PROVIDER}" {{
  version     = "{AWS_PROVIDER_VERSION}"
  constraints = "{AWS_PROVIDER_VERSION}"
  hashes = [
    "{AWS_PROVIDER_H1}",
  ]
}}
"""

TERRAFORMRC = f"""provider_installation {{
  filesystem_mirror {{
    path    = "{MIRROR}"
    include = ["{AWS_PROVIDER}"]
  }}
  direct {{
    exclude = ["{AWS_PROVIDER}"]
  }}
}}
"""


def dockerfile(wheel: str, extra_requirements: tuple[str, ...] = ()) -> str:
    """The Dockerfile; ``wheel`` is the file name of Ephemera's wheel in ``wheels/``."""
    extra = "".join(f" {json.dumps(r)}" for r in extra_requirements)
    return DOCKERFILE.format(
        base=BASE_IMAGE,
        tf_sha256=TERRAFORM_SHA256,
        tf_version=TERRAFORM_VERSION,
        mirror=MIRROR,
        cli_config=CLI_CONFIG,
        wheel=wheel,
        extra=extra,
        handler=HANDLER,
    )


def image_files(wheel: str, extra_requirements: tuple[str, ...] = ()) -> dict[str, str]:
    """The build context's text files, by path relative to the context (the wheels are built beside them)."""
    return {
        "Dockerfile": dockerfile(wheel, extra_requirements),
        "providers/versions.tf": PROVIDERS_TF,
        "providers/.terraform.lock.hcl": LOCK_HCL,
        "terraformrc": TERRAFORMRC,
    }


def image_tag(files: dict[str, str], version: str) -> str:
    """An immutable tag: Ephemera's version and a digest of the build context's text."""
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:12]
    return f"{version}-{digest}".replace("+", "-")


def build_context_wheels(context: Path, needs_ibm: bool, wheel_dir: Path | None = None, say: Say = lambda _: None) -> list[Path]:
    """Fill the build context's ``wheels/``: Ephemera's own wheel (with the stacks), and
    the wheels of the source-only IBM packages when the config needs them (built once
    into ``wheel_dir``, as for the other targets)."""
    wheels = Path(context) / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    built = [build_wheel(wheels)]
    if needs_ibm:
        for wheel in build_sdist_wheels(Path(wheel_dir) if wheel_dir else wheels, say):
            target = wheels / wheel.name
            if wheel != target:
                target.write_bytes(wheel.read_bytes())
            built.append(target)
    say(f"image context {context}: {', '.join(w.name for w in built)}")
    return built
