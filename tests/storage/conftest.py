"""Fixtures of the storage tests: one storage object per backend, on local fakes.

The fake fixtures (``s3_endpoint``, ``iam_server``, ``unique_bucket``) come from
``tests.fakes.fixtures``, which the root ``tests/conftest.py`` loads as a plugin.
"""

from __future__ import annotations

from typing import Callable

import pytest

# credentials the tests hand to the backends; tests assert they never leak
S3_KEY_ID = "TESTFAKEKEYID4TESTS77"
S3_SECRET = "fake-s3-secret-Zq8wX2vN5mR1tY6u"
COS_KEY_ID = "cos-hmac-keyid-3b9d1e7f0a2c"
COS_SECRET = "cos-hmac-secret-e4f5a6b7c8d9e0f1a2b3c4d5"
BACKENDS = ("localhost", "aws_s3", "ibm_cos")
TEST_SETTLE = 0.2  # claim settle time in tests, seconds


def build_storage(name: str, endpoint: str, root, **options):
    """A fresh storage object of backend ``name`` on the test fakes."""
    if name == "localhost":
        from ephemera.storage.localhost.backend import LocalhostStorage

        return LocalhostStorage(root)
    if name == "aws_s3":
        from ephemera.storage.aws_s3.backend import S3Storage
        from ephemera.storage.aws_s3.config import S3Settings

        return S3Storage(S3Settings(endpoint, "us-east-1", S3_KEY_ID, S3_SECRET), **{"claim_settle": TEST_SETTLE, **options})
    if name == "ibm_cos":
        from ephemera.storage.ibm_cos.backend import IBMCOSStorage
        from ephemera.storage.ibm_cos.config import COSSettings

        settings = COSSettings(endpoint, "us-south", "hmac", access_key_id=COS_KEY_ID, secret_access_key=COS_SECRET)
        return IBMCOSStorage(settings, **{"claim_settle": TEST_SETTLE, **options})
    raise ValueError(name)


@pytest.fixture(params=BACKENDS)
def backend_name(request) -> str:
    return request.param


@pytest.fixture
def make_storage(backend_name, s3_endpoint, tmp_path) -> Callable:
    """Builds storage objects of the parametrized backend (all share one store)."""
    root = tmp_path / "storage"
    return lambda **options: build_storage(backend_name, s3_endpoint, root, **options)


@pytest.fixture
def storage(make_storage):
    return make_storage()


@pytest.fixture
def bucket(storage, unique_bucket) -> str:
    storage.create_bucket(unique_bucket)
    return unique_bucket
