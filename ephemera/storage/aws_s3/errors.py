"""Errors of S3-compatible SDKs (boto3 and ibm-cos-sdk) as Ephemera storage errors.

Both SDKs raise parallel but distinct classes (``botocore.exceptions.ClientError`` and
``ibm_botocore.exceptions.ClientError``), so errors are recognised by the service's
error code and by class *names*, and this module imports neither SDK.

Only named transient failures are ``retryable``: throttling, ``503 SlowDown``,
request timeouts, internal errors and connection failures. Everything else is not.

Secrets: every message built here is scrubbed of the backend's secret values, and
:func:`install_log_redaction` attaches a filter to the SDK loggers (``botocore``,
``ibm_botocore``, ``urllib3``, ...) that removes those values, ``Bearer`` tokens and
signing credentials from their records, which at DEBUG level include request headers.
"""

from __future__ import annotations

from typing import Iterable

from ephemera.errors import NoSuchBucketError, NoSuchKeyError, StorageError
from ephemera.secrets import Scrubber, guard_loggers

# error codes an S3-compatible service returns for a failure that may pass
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "PriorRequestNotComplete",
        "OperationAborted",
        "500",
        "502",
        "503",
        "504",
    }
)
TRANSIENT_STATUS = frozenset({500, 502, 503, 504})
# SDK exception classes (by name, both SDKs) for network failures that may pass
TRANSIENT_EXCEPTIONS = frozenset(
    {
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "ResponseStreamingError",
        "IncompleteReadError",
    }
)
NOT_TRANSIENT_EXCEPTIONS = frozenset({"SSLError", "ProxyConnectionError"})
MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
MISSING_BUCKET_CODES = frozenset({"NoSuchBucket"})

_SDK_LOGGERS = ("botocore", "ibm_botocore", "boto3", "ibm_boto3", "s3transfer", "ibm_s3transfer", "urllib3")


def error_code(exc: BaseException) -> tuple[str, int | None]:
    """(error code, HTTP status) of an SDK ClientError; ('', None) for anything else."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return "", None
    code = str(response.get("Error", {}).get("Code", "") or "")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code, status


def _class_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def is_client_error(exc: BaseException) -> bool:
    return "ClientError" in _class_names(exc)


def is_transient(exc: BaseException) -> bool:
    """Whether a failed call may succeed if repeated later."""
    names = _class_names(exc)
    if names & NOT_TRANSIENT_EXCEPTIONS:
        return False
    if names & TRANSIENT_EXCEPTIONS:
        return True
    code, status = error_code(exc)
    return code in TRANSIENT_CODES or status in TRANSIENT_STATUS


def to_storage_error(
    exc: BaseException,
    operation: str,
    bucket: str,
    key: str | None = None,
    *,
    secrets: Iterable[str] = (),
    credentials_hint: str = "",
) -> StorageError:
    """The Ephemera error for an SDK exception raised by ``operation`` on bucket/key."""
    code, status = error_code(exc)
    target = f"'{key}' in bucket '{bucket}'" if key else f"bucket '{bucket}'"
    if code in MISSING_BUCKET_CODES:
        return NoSuchBucketError(bucket)
    if key is not None and code in MISSING_KEY_CODES:
        return NoSuchKeyError(bucket, key)
    names = _class_names(exc)
    if code:
        detail = getattr(exc, "response", {}).get("Error", {}).get("Message", "") or ""
        message = f"{operation} of {target} failed: {code} (HTTP {status})"
        if detail:
            message += f": {detail}"
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "401") and credentials_hint:
            message += f"; {credentials_hint}"
    elif names & {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"}:
        message = f"{operation} of {target} failed: the storage credentials were refused or missing ({exc})"
        if credentials_hint:
            message += f"; {credentials_hint}"
        retryable = "HttpCode(5" in str(exc)
        return StorageError(Scrubber(secrets).scrub(message), retryable=retryable)
    else:
        message = f"{operation} of {target} failed: {type(exc).__name__}: {exc}"
    return StorageError(Scrubber(secrets).scrub(message), retryable=is_transient(exc))


def install_log_redaction(secrets: Iterable[str]) -> None:
    """Scrub these secret values from every SDK logger (call after the SDK is imported)."""
    guard_loggers(_SDK_LOGGERS, secrets)
