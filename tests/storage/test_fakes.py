"""The local fakes behave like the services they stand in for, as the SDKs see them."""

from __future__ import annotations

import jwt
import pytest
import requests

from tests.fakes.fixtures import FAKE_IAM_API_KEY
from tests.fakes.s3_server import start_s3_server


def test_iam_token_via_ibm_cloud_sdk_core_with_bx_client(iam_server):
    from ibm_cloud_sdk_core.authenticators import IAMAuthenticator

    auth = IAMAuthenticator(FAKE_IAM_API_KEY, url=iam_server.url, client_id="bx", client_secret="bx")
    token = auth.token_manager.get_token()
    assert token == iam_server.tokens[-1]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 3600
    assert auth.token_manager.token_info["refresh_token"]
    (req,) = iam_server.requests
    assert req.path == "/identity/token" and req.basic_auth == ("bx", "bx")
    assert req.form["grant_type"] == "urn:ibm:params:oauth:grant-type:apikey"


def test_iam_response_shape_and_refresh_grant(iam_server):
    form = {"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": FAKE_IAM_API_KEY}
    body = requests.post(iam_server.token_url, data=form, timeout=10).json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["expiration"] > 0 and body["refresh_token"]
    assert iam_server.requests[-1].basic_auth is None
    again = requests.post(
        iam_server.token_url,
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        auth=("bx", "bx"),
        timeout=10,
    )
    assert again.status_code == 200 and again.json()["access_token"] != body["access_token"]


def test_iam_rejects_unknown_api_key_like_iam(iam_server):
    from ibm_cloud_sdk_core import ApiException
    from ibm_cloud_sdk_core.authenticators import IAMAuthenticator

    auth = IAMAuthenticator("not-a-known-key", url=iam_server.url)
    with pytest.raises(ApiException) as err:
        auth.token_manager.get_token()
    assert err.value.status_code == 400
    body = err.value.http_response.json()
    assert body["errorCode"] == "BXNIM0415E" and body["errorMessage"] == "Provided API key could not be found."
    assert iam_server.tokens == []


def test_s3_fake_can_refuse_conditional_put():
    import boto3

    url, stop = start_s3_server(reject_conditional_put=True)
    try:
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
        s3.create_bucket(Bucket="fake-check")
        with pytest.raises(Exception) as err:
            s3.put_object(Bucket="fake-check", Key="k", Body=b"", IfNoneMatch="*")
        assert err.value.response["Error"]["Code"] == "NotImplemented"
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
        s3.put_object(Bucket="fake-check", Key="k", Body=b"plain")  # unconditional PUTs still work
    finally:
        stop()
