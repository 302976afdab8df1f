"""IBM COS: endpoint derivation, credential choice, and IAM over HTTP against local fakes."""

from __future__ import annotations

import logging

import pytest

from ephemera.assembly import load_config
from ephemera.errors import ConfigError, StorageError
from ephemera.assembly import get_storage
from ephemera.storage.ibm_cos.backend import IBMCOSStorage
from ephemera.storage.ibm_cos.config import cos_endpoint, cos_settings
from tests.fakes.fixtures import FAKE_IAM_API_KEY
from tests.fakes.s3_server import start_s3_server
from tests.storage.conftest import COS_KEY_ID, COS_SECRET

INSTANCE_CRN = "crn:v1:bluemix:public:cloud-object-storage:global:a/0123abcd:5678-ef90::"


@pytest.mark.parametrize(
    "region, endpoint_type, expected",
    [
        ("us-south", "public", "https://s3.us-south.cloud-object-storage.appdomain.cloud"),
        ("us-south", "private", "https://s3.private.us-south.cloud-object-storage.appdomain.cloud"),
        ("us-south", "direct", "https://s3.direct.us-south.cloud-object-storage.appdomain.cloud"),
        ("eu-de", "public", "https://s3.eu-de.cloud-object-storage.appdomain.cloud"),
        ("eu-de", "direct", "https://s3.direct.eu-de.cloud-object-storage.appdomain.cloud"),
        ("jp-tok", "private", "https://s3.private.jp-tok.cloud-object-storage.appdomain.cloud"),
        ("us", "public", "https://s3.us.cloud-object-storage.appdomain.cloud"),  # cross-region
        ("ams03", "direct", "https://s3.direct.ams03.cloud-object-storage.appdomain.cloud"),  # single site
    ],
)
def test_endpoint_derivation(region, endpoint_type, expected):
    assert cos_endpoint(region, endpoint_type) == expected
    config = load_config(
        {
            "ibm_cos": {
                "region": region,
                "endpoint_type": endpoint_type,
                "access_key_id": COS_KEY_ID,
                "secret_access_key": COS_SECRET,
            }
        }
    )
    assert cos_settings(config).endpoint == expected


@pytest.mark.parametrize("region, field", [("US South", "ibm_cos.region"), ("", "ibm_cos.region")])
def test_bad_region_names_the_field(region, field):
    with pytest.raises(ConfigError) as err:
        cos_endpoint(region, "public")
    assert err.value.field == field


def test_bad_endpoint_type_names_the_field():
    with pytest.raises(ConfigError) as err:
        cos_endpoint("us-south", "internal")
    assert err.value.field == "ibm_cos.endpoint_type"


def test_explicit_endpoint_wins_and_is_checked():
    config = load_config(
        {
            "ibm_cos": {
                "endpoint": "http://127.0.0.1:9000/",
                "region": "eu-de",
                "access_key_id": COS_KEY_ID,
                "secret_access_key": COS_SECRET,
            }
        }
    )
    assert cos_settings(config).endpoint == "http://127.0.0.1:9000"
    bad = load_config({"ibm_cos": {"endpoint": "s3.example.com", "access_key_id": COS_KEY_ID, "secret_access_key": COS_SECRET}})
    with pytest.raises(ConfigError) as err:
        cos_settings(bad)
    assert err.value.field == "ibm_cos.endpoint"


def test_claim_settle_comes_from_the_config_and_is_bounded():
    """COS has no conditional PUT, so create-only-if-absent waits ``claim_settle`` seconds
    per claim; the setting reaches the client, and a value the protocol cannot work with
    (negative, or not below the 60 s after which a claim is taken as stale) is refused by name."""
    keys = {"endpoint": "http://127.0.0.1:9000", "access_key_id": COS_KEY_ID, "secret_access_key": COS_SECRET}
    bucket = {"storage": {"backend": "ibm_cos", "bucket": "settle-bucket"}}
    assert get_storage(load_config({**bucket, "ibm_cos": keys})).claim_settle == 1.0
    assert get_storage(load_config({**bucket, "ibm_cos": {**keys, "claim_settle": 0.25}})).claim_settle == 0.25
    for bad in (-0.5, 60, "soon"):
        with pytest.raises(ConfigError) as err:
            load_config({**bucket, "ibm_cos": {**keys, "claim_settle": bad}})
        assert err.value.field == "ibm_cos.claim_settle"


def test_hmac_chosen_when_keys_set():
    settings = cos_settings(
        load_config({"ibm_cos": {"access_key_id": COS_KEY_ID, "secret_access_key": COS_SECRET, "api_key": "unused-api-key-123"}})
    )
    assert settings.auth == "hmac"
    assert COS_SECRET not in repr(settings) and COS_KEY_ID not in repr(settings)


def test_iam_defaults_from_ibm_section():
    config = load_config(
        {
            "ibm": {"iam_api_key": "account-api-key-xyz", "iam_url": "https://iam.test.cloud.ibm.com/"},
            "ibm_cos": {"service_instance_id": INSTANCE_CRN},
        }
    )
    settings = cos_settings(config)
    assert settings.auth == "iam"
    assert settings.api_key == "account-api-key-xyz"
    assert settings.auth_endpoint == "https://iam.test.cloud.ibm.com/identity/token"
    assert settings.service_instance_id == INSTANCE_CRN
    assert "account-api-key-xyz" not in repr(settings)


def test_iam_explicit_values_win():
    config = load_config(
        {
            "ibm": {"iam_api_key": "account-api-key-xyz"},
            "ibm_cos": {
                "api_key": "cos-api-key-abc",
                "service_instance_id": INSTANCE_CRN,
                "auth_endpoint": "https://private.iam.cloud.ibm.com/identity/token",
            },
        }
    )
    settings = cos_settings(config)
    assert settings.api_key == "cos-api-key-abc"
    assert settings.auth_endpoint == "https://private.iam.cloud.ibm.com/identity/token"


@pytest.mark.parametrize(
    "section, field",
    [
        ({"access_key_id": COS_KEY_ID}, "ibm_cos.secret_access_key"),
        ({}, "ibm_cos.api_key"),
        ({"api_key": "some-api-key-1"}, "ibm_cos.service_instance_id"),
    ],
)
def test_missing_credentials_name_the_field(section, field):
    # also when another storage backend is selected (the config's own check does not run then)
    with pytest.raises(ConfigError) as err:
        cos_settings(load_config({"ibm_cos": section}))
    assert err.value.field == field
    with pytest.raises(ConfigError) as err:
        load_config({"storage": {"backend": "ibm_cos"}, "ibm_cos": section})
    assert err.value.field == field


@pytest.fixture
def recorded_s3():
    log: list = []
    url, stop = start_s3_server(request_log=log)
    yield url, log
    stop()


def test_iam_over_http(recorded_s3, iam_server, unique_bucket):
    url, s3_log = recorded_s3
    config = {
        "storage": {"backend": "ibm_cos", "bucket": unique_bucket},
        "ibm": {"iam_api_key": FAKE_IAM_API_KEY, "iam_url": iam_server.url},
        "ibm_cos": {"endpoint": url, "service_instance_id": INSTANCE_CRN},
    }
    storage = get_storage(config)
    assert isinstance(storage, IBMCOSStorage) and storage.settings.auth == "iam"
    storage.create_bucket(unique_bucket)
    storage.put(unique_bucket, "a/b", b"payload")
    assert storage.get(unique_bucket, "a/b", byte_range=(0, 2)) == b"pay"
    assert [o.key for o in storage.list(unique_bucket)] == ["a/b"]
    assert storage.put_if_absent(unique_bucket, "lock", b"x") is True
    assert storage.put_if_absent(unique_bucket, "lock", b"y") is False

    # the SDK asked the fake IAM for a token with the API key, the way IAM expects
    token_requests = [r for r in iam_server.requests if r.path == "/identity/token"]
    assert token_requests, "no token was requested from IAM"
    first = token_requests[0]
    assert first.method == "POST"
    assert first.form["grant_type"] == "urn:ibm:params:oauth:grant-type:apikey"
    assert first.form["apikey"] == FAKE_IAM_API_KEY
    assert first.basic_auth == ("bx", "bx")
    # ... and sent that token, as a Bearer token, on every S3 request
    assert s3_log
    issued = {f"Bearer {t}" for t in iam_server.tokens}
    assert all(r.headers.get("Authorization") in issued for r in s3_log)
    assert not any("AWS4-HMAC-SHA256" in r.headers.get("Authorization", "") for r in s3_log)
    creates = [r for r in s3_log if r.method == "PUT" and r.path == f"/{unique_bucket}"]
    assert creates and creates[0].headers.get("Ibm-Service-Instance-Id") == INSTANCE_CRN
    # COS put_if_absent never relies on If-None-Match
    assert not any("If-None-Match" in r.headers for r in s3_log)
    assert any("/lock.claims/" in r.path for r in s3_log)


def test_hmac_signs_requests(recorded_s3, unique_bucket):
    url, s3_log = recorded_s3
    storage = get_storage(
        {
            "storage": {"backend": "ibm_cos"},
            "ibm_cos": {"endpoint": url, "access_key_id": COS_KEY_ID, "secret_access_key": COS_SECRET},
        }
    )
    storage.create_bucket(unique_bucket)
    storage.put(unique_bucket, "k", b"v")
    auth = [r.headers.get("Authorization", "") for r in s3_log]
    assert auth and all(a.startswith(f"AWS4-HMAC-SHA256 Credential={COS_KEY_ID}/") for a in auth)


def test_unknown_api_key_is_refused_without_leaking_it(recorded_s3, iam_server, unique_bucket, caplog):
    caplog.set_level(logging.DEBUG)
    url, _ = recorded_s3
    bad_key = "unknown-api-key-5d1e9c0b7a"
    storage = get_storage(
        {
            "storage": {"backend": "ibm_cos"},
            "ibm": {"iam_api_key": bad_key, "iam_url": iam_server.url},
            "ibm_cos": {"endpoint": url, "service_instance_id": INSTANCE_CRN},
        }
    )
    with pytest.raises(StorageError) as err:
        storage.put(unique_bucket, "k", b"v")
    message = str(err.value)
    assert err.value.retryable is False
    assert "ibm_cos.api_key" in message and "HttpCode(400)" in message
    assert bad_key not in message
    assert iam_server.requests and all(r.form.get("apikey") == bad_key for r in iam_server.requests)
    for record in caplog.records:
        assert bad_key not in record.getMessage()
        assert bad_key not in (record.exc_text or "")


def test_delete_many_sends_the_integrity_header_cos_requires():
    """IBM COS's "Deleting multiple objects": "An integrity check is required by using
    either content-md5, a x-amz-checksum- header, or the x-amz-content-sha256 header."
    moto does not enforce it, so the request ibm_boto3 builds for ``delete_many`` is
    read as sent: it carries one of the three."""
    from ephemera.storage.ibm_cos.config import COSSettings
    from ibm_botocore.awsrequest import AWSResponse

    store = IBMCOSStorage(
        COSSettings("http://127.0.0.1:9", "us-south", "hmac", access_key_id=COS_KEY_ID, secret_access_key=COS_SECRET)
    )
    sent: dict = {}

    class Body:
        def stream(self, **_kw):
            yield b"<DeleteResult></DeleteResult>"

    def answer(request, **_kw):
        sent.update({k.lower(): v for k, v in request.headers.items()})
        return AWSResponse(request.url, 200, {}, Body())

    store._client.meta.events.register("before-send.s3.DeleteObjects", answer)
    store.delete_many("bkt", ["a", "b/c"])
    integrity = {"content-md5", "x-amz-content-sha256"} | {k for k in sent if k.startswith("x-amz-checksum-")}
    assert integrity & set(sent), sorted(sent)
