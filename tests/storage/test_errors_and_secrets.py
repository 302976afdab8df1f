"""Error mapping of the S3-compatible backends, aws_s3 settings, and secrets never leaking."""

from __future__ import annotations

import logging
import socket

import pytest

from ephemera.assembly import load_config
from ephemera.errors import ConfigError, NoSuchBucketError, NoSuchKeyError, StorageError
from ephemera.secrets import MASK, Scrubber
from ephemera.assembly import get_storage
from ephemera.storage.aws_s3.backend import S3Storage
from ephemera.storage.aws_s3.config import S3Settings, s3_settings
from ephemera.storage.aws_s3.errors import to_storage_error
from tests.fakes.fixtures import FAKE_IAM_API_KEY
from tests.storage.conftest import COS_KEY_ID, COS_SECRET, S3_KEY_ID, S3_SECRET

SESSION_TOKEN = "fake-session-token-Qm9vYmFyYmF6cXV4"
ALL_SECRETS = (S3_KEY_ID, S3_SECRET, SESSION_TOKEN, COS_KEY_ID, COS_SECRET, FAKE_IAM_API_KEY)


def _client_error(module: str, code: str, status: int, message: str = "msg"):
    exceptions = pytest.importorskip(f"{module}.exceptions")
    response = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return exceptions.ClientError(response, "PutObject")


@pytest.mark.parametrize("module", ["botocore", "ibm_botocore"])
@pytest.mark.parametrize(
    "code, status, retryable",
    [
        ("SlowDown", 503, True),
        ("ServiceUnavailable", 503, True),
        ("Throttling", 400, True),
        ("RequestTimeout", 400, True),
        ("InternalError", 500, True),
        ("AccessDenied", 403, False),
        ("InvalidArgument", 400, False),
        ("EntityTooLarge", 400, False),
    ],
)
def test_only_named_transient_errors_are_retryable(module, code, status, retryable):
    err = to_storage_error(_client_error(module, code, status), "put", "bkt", "k")
    assert type(err) is StorageError
    assert err.retryable is retryable
    assert code in err.message and "'k' in bucket 'bkt'" in err.message


@pytest.mark.parametrize("module", ["botocore", "ibm_botocore"])
def test_missing_key_and_bucket_codes(module):
    assert isinstance(to_storage_error(_client_error(module, "NoSuchKey", 404), "get", "bkt", "k"), NoSuchKeyError)
    assert isinstance(to_storage_error(_client_error(module, "NoSuchBucket", 404), "get", "bkt", "k"), NoSuchBucketError)


def test_access_denied_gives_the_fix_and_scrubs_echoed_secrets():
    echoed = f"The key {S3_KEY_ID} with signature over {S3_SECRET} is not allowed"
    err = to_storage_error(
        _client_error("botocore", "AccessDenied", 403, echoed),
        "put",
        "bkt",
        "k",
        secrets=[S3_KEY_ID, S3_SECRET],
        credentials_hint="check aws_s3.access_key_id",
    )
    assert "check aws_s3.access_key_id" in err.message
    assert S3_KEY_ID not in err.message and S3_SECRET not in err.message and MASK in err.message


def test_scrub_masks_bearer_tokens_and_signing_key_ids():
    text = "headers={'Authorization': b'Bearer eyJ.abc-def.ghi', 'x': 'AWS4-HMAC-SHA256 Credential=AKIA123/20260101/us'}"
    out = Scrubber().scrub(text)
    assert "eyJ.abc-def.ghi" not in out and "AKIA123" not in out
    assert "Bearer ********" in out and "Credential=********/" in out


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_failure_is_retryable_and_clean():
    store = S3Storage(S3Settings(f"http://127.0.0.1:{_closed_port()}", "us-east-1", S3_KEY_ID, S3_SECRET), max_attempts=1)
    with pytest.raises(StorageError) as err:
        store.get("bkt", "k")
    assert err.value.retryable is True
    assert "EndpointConnectionError" in str(err.value)
    assert S3_KEY_ID not in str(err.value) and S3_SECRET not in str(err.value)


def test_s3_settings_from_config():
    config = load_config(
        {
            "aws_s3": {
                "endpoint": "http://127.0.0.1:9000/",
                "region": "eu-west-1",
                "access_key_id": S3_KEY_ID,
                "secret_access_key": S3_SECRET,
                "session_token": SESSION_TOKEN,
            }
        }
    )
    settings = s3_settings(config)
    assert (settings.endpoint, settings.region) == ("http://127.0.0.1:9000", "eu-west-1")
    assert settings.secret_values() == [S3_KEY_ID, S3_SECRET, SESSION_TOKEN]
    assert not any(s in repr(settings) for s in (S3_KEY_ID, S3_SECRET, SESSION_TOKEN))


@pytest.mark.parametrize(
    "section, field",
    [
        ({"endpoint": "127.0.0.1:9000"}, "aws_s3.endpoint"),
        ({"endpoint": f"http://{S3_KEY_ID}:{S3_SECRET}@127.0.0.1:9000"}, "aws_s3.endpoint"),
        ({"access_key_id": S3_KEY_ID}, "aws_s3.secret_access_key"),
        ({"session_token": SESSION_TOKEN}, "aws_s3.session_token"),
    ],
)
def test_bad_s3_settings_name_the_field(section, field):
    with pytest.raises(ConfigError) as err:
        s3_settings(load_config({"aws_s3": section}))
    assert err.value.field == field
    assert S3_SECRET not in str(err.value)


def _exercise(storage, bucket: str) -> list[str]:
    """Run every operation, good and failing; return the failure messages."""
    messages = []
    storage.create_bucket(bucket)
    storage.put(bucket, "a/x", b"1")
    storage.get(bucket, "a/x", byte_range=(0, 0))
    storage.head(bucket, "a/x")
    list(storage.list(bucket, "a/"))
    storage.put_if_absent(bucket, "lock", b"1")
    storage.put_if_absent(bucket, "lock", b"1")
    storage.delete(bucket, "a/x")
    for call in (
        lambda: storage.get(bucket, "missing"),
        lambda: storage.head("no-such-bucket-here", "k"),
        lambda: list(storage.list("no-such-bucket-here")),
        lambda: storage.put(bucket, "../bad", b""),
    ):
        with pytest.raises(StorageError) as err:
            call()
        messages.append(str(err.value))
    return messages


@pytest.fixture(params=["aws_s3", "ibm_cos_hmac", "ibm_cos_iam"])
def cloud_config(request, s3_endpoint, iam_server):
    if request.param == "aws_s3":
        return {
            "storage": {"backend": "aws_s3"},
            "aws_s3": {
                "endpoint": s3_endpoint,
                "access_key_id": S3_KEY_ID,
                "secret_access_key": S3_SECRET,
                "session_token": SESSION_TOKEN,
            },
        }
    if request.param == "ibm_cos_hmac":
        return {
            "storage": {"backend": "ibm_cos"},
            "ibm_cos": {"endpoint": s3_endpoint, "access_key_id": COS_KEY_ID, "secret_access_key": COS_SECRET},
        }
    return {
        "storage": {"backend": "ibm_cos"},
        "ibm": {"iam_api_key": FAKE_IAM_API_KEY, "iam_url": iam_server.url},
        "ibm_cos": {"endpoint": s3_endpoint, "service_instance_id": "crn:v1:test"},
    }


def test_no_secret_in_any_log_record_or_error(cloud_config, unique_bucket, caplog):
    caplog.set_level(logging.DEBUG)
    storage = get_storage(cloud_config)
    storage.claim_settle = 0.05
    messages = _exercise(storage, unique_bucket)
    messages.append(repr(storage))
    texts = messages + [r.getMessage() for r in caplog.records] + [r.exc_text or "" for r in caplog.records]
    leaked = [(s, t[:200]) for t in texts for s in ALL_SECRETS if s in t]
    assert leaked == []
    # the SDK did log its signed requests at DEBUG: redaction, not silence, kept them clean
    signed = [r.getMessage() for r in caplog.records if "Authorization" in r.getMessage()]
    assert signed and all("********" in m for m in signed)


class _DeleteObjectsReply:
    """An S3 client whose DeleteObjects answers 200 with the given per-key ``Errors``
    (S3 reports refused keys in the body of a successful reply, not as an exception)."""

    def __init__(self, errors: list[dict]):
        self.errors, self.requests = errors, []

    def delete_objects(self, Bucket, Delete):  # noqa: N803 - boto3's parameter names
        self.requests.append([o["Key"] for o in Delete["Objects"]])
        return {"Errors": self.errors} if self.errors else {}


@pytest.mark.parametrize(
    "errors, raised",
    [
        ([], None),
        ([{"Key": "gone", "Code": "NoSuchKey"}], None),
        ([{"Key": "b", "Code": "AccessDenied", "Message": "no"}], (False, "'b'", "AccessDenied")),
        ([{"Key": "a", "Code": "SlowDown"}, {"Key": "b", "Code": "SlowDown"}], (True, "'a'", "2 of 3")),
    ],
)
def test_delete_many_reports_the_keys_s3_refused_in_its_reply(errors, raised):
    """DeleteObjects answers 200 and lists refused keys under ``Errors``: a missing key is
    no error; any other code raises a StorageError naming the first refused key, retryable
    only for a named transient code (SlowDown), never with the credentials."""
    from ephemera.storage.aws_s3.backend import S3CompatibleStorage

    client = _DeleteObjectsReply(errors)
    store = S3CompatibleStorage(client, [S3_SECRET])
    if raised is None:
        store.delete_many("bkt", ["a", "b", "gone"])
    else:
        retryable, *said = raised
        with pytest.raises(StorageError) as err:
            store.delete_many("bkt", ["a", "b", "gone"])
        assert err.value.retryable is retryable and all(s in err.value.message for s in said)
        assert S3_SECRET not in err.value.message
    assert client.requests == [["a", "b", "gone"]]
