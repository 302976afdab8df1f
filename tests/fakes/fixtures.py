"""pytest fixtures for the local cloud fakes; loaded with
``pytest_plugins = ["tests.fakes.fixtures"]`` (or imported by a conftest).

- ``s3_endpoint`` (session): URL of a moto S3 server on 127.0.0.1. Its state is
  process-wide: use a unique bucket per test (``unique_bucket``).
- ``iam_server``: a fresh fake IBM IAM (see :mod:`tests.fakes.iam_server`) that
  accepts :data:`FAKE_IAM_API_KEY`; add keys to ``iam_server.valid_api_keys``.
- ``unique_bucket``: a bucket name no other test uses.
"""

from __future__ import annotations

import logging
import uuid
from typing import Iterator

import pytest

from tests.fakes.iam_server import IAMServer, start_iam_server
from tests.fakes.s3_server import start_s3_server

FAKE_IAM_API_KEY = "fake-iam-apikey-7f3c2a9e51d04b6c"  # accepted by the iam_server fixture


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request access log
    url, stop = start_s3_server()
    yield url
    stop()


@pytest.fixture
def iam_server() -> Iterator[IAMServer]:
    server = start_iam_server({FAKE_IAM_API_KEY})
    yield server
    server.stop()


@pytest.fixture
def unique_bucket() -> str:
    return f"test-{uuid.uuid4().hex[:20]}"
