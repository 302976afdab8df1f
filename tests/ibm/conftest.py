"""Fixtures for the IBM Cloud tests: a fake IAM and a fake Schematics API on 127.0.0.1."""

from __future__ import annotations

import http.client

import pytest

from tests.fakes.iam_server import start_iam_server
from tests.fakes.schematics_server import start_schematics_server

API_KEY = "apikey-7Hq2-SECRET-do-not-log"
HMAC_ID = "hmacid-4c1d-SECRET-id"
HMAC_SECRET = "hmacsecret-9f8e-SECRET-value"
SECRETS = (API_KEY, HMAC_ID, HMAC_SECRET)
# the claim protocol's settle covers a claim PUT's latency plus clock skew: on this machine
# there is no skew, so a fifth of the 1 s a real COS takes (each locked ledger write waits it)
CLAIM_SETTLE = 0.2
VM_PROFILE = "Profile-0b9a2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"  # the run's VMs' identity (a HMAC controller's keys stay on it)


@pytest.fixture
def iam():
    server = start_iam_server({API_KEY})
    yield server
    server.stop()


@pytest.fixture
def schematics(iam):
    server = start_schematics_server()
    server.token_check = lambda token: token in iam.tokens  # only tokens the fake IAM issued
    yield server
    server.stop()


@pytest.fixture
def ibm_config(iam, schematics) -> dict:
    return {
        "engine": {"backend": "schematics"},
        "ibm": {"iam_api_key": API_KEY, "iam_url": iam.url},
        "schematics": {"workspace_id": schematics.workspace_id, "url": schematics.url},
    }


@pytest.fixture
def cos_config(ibm_config, s3_endpoint, tmp_path, unique_bucket) -> dict:
    """A cloud config as deployed: IBM COS over HMAC (a local S3 server, a fresh bucket),
    the VMs' trusted profile, and Schematics (the fakes); add triggers and rules."""
    from ephemera.assembly import get_storage

    config = {
        **ibm_config,
        "storage": {"backend": "ibm_cos", "bucket": unique_bucket},
        # the controller's HMAC keys stay on it: cloud VMs authenticate as the trusted profile
        "ibm_cos": {
            "endpoint": s3_endpoint,
            "access_key_id": HMAC_ID,
            "secret_access_key": HMAC_SECRET,
            "trusted_profile_id": VM_PROFILE,
            "claim_settle": CLAIM_SETTLE,
        },
        "workspace": {"name": "gpu", "stack": "ibm-vpc-gpu"},
        "home": str(tmp_path / "home"),
    }
    get_storage(config).create_bucket(unique_bucket)
    return config


def deployed(config: dict) -> dict:
    """``config`` as ``ephemera deploy`` binds it into the actions: the run bundle
    published to its state bucket, ``workload.bundle`` naming it."""
    from ephemera.bundle.store import bound_config, publish_config_bundle
    from ephemera.assembly import load_config
    from ephemera.assembly import get_storage

    loaded = load_config(config)
    ref = publish_config_bundle(loaded, get_storage(loaded))
    return bound_config(loaded, ref.sha256, ref.requirements).to_dict(redact=False)


@pytest.fixture
def restore_http_debug():
    """The SDK turns on http.client debugging when DEBUG logging is on at construction."""
    yield
    http.client.HTTPConnection.debuglevel = 0
    http.client.__dict__.pop("print", None)
