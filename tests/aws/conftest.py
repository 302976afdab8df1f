"""Fixtures for the AWS stack tests: the mirrored AWS provider and a moto server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
from pathlib import Path
from typing import Iterator

import pytest

from tests.aws.stackfiles import GO_ENV, cli_config, plugin_mirror

ACCOUNT = "123456789012"  # moto's account: images registered in it are owned by it
UBUNTU = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-{}"
# Canonical's serials, out of order; 20250410.1 is the newest by number
SERIALS = ("20250305", "20250410.1", "20241120", "20250410", "20250402")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def aws_mirror() -> Path:
    mirror, why = plugin_mirror()
    if mirror is None:
        pytest.skip(why)
    if shutil.which("terraform") is None:
        pytest.skip("no terraform binary on PATH: the AWS provider runs under the Terraform CLI")
    return mirror


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A fresh moto server on 127.0.0.1 (every service moto has), its URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def moto_aws(aws_mirror) -> Iterator[dict]:
    """A fresh moto server (EC2, IAM, STS, S3) of this module's own, with Ubuntu 24.04 images
    registered under Canonical's naming: {"url", "images": {serial: ami id}}."""
    with moto_server() as url:
        yield {"url": url, "images": _register_images(url)}


def _register_images(url: str) -> dict:
    import boto3

    ec2 = boto3.client(
        "ec2", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    images = {
        s: ec2.register_image(Name=UBUNTU.format(s), RootDeviceName="/dev/sda1", VirtualizationType="hvm")["ImageId"]
        for s in SERIALS
    }
    return images


@pytest.fixture
def aws_env(aws_mirror, moto_aws, tmp_path, monkeypatch) -> dict:
    """The environment the controller applies in: moto's dummy keys for the provider's
    default chain, and a CLI config that installs the provider from the mirror only."""
    rc = cli_config(tmp_path / "terraformrc", aws_mirror)
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(rc))
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        **GO_ENV,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_aws


def aws_client(url: str, service: str):
    import boto3

    return boto3.client(
        service, endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


@pytest.fixture
def moto_s3_env(monkeypatch) -> Iterator[str]:
    """A moto server of the test's own and the AWS default chain's dummy keys: its URL.
    The tests that need only S3 (Terraform's S3 backend is built into the binary) use it."""
    if shutil.which("terraform") is None:
        pytest.skip("no terraform binary on PATH")
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        **GO_ENV,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with moto_server() as url:
        yield url
