"""S3 storage through boto3, and the base class shared with the IBM COS backend.

:class:`S3CompatibleStorage` implements the whole Storage interface over an S3
client object (boto3's or ibm-cos-sdk's: the same API); subclasses only build the
client. SDKs are imported inside the constructors, never at module import.

``put_if_absent`` uses a conditional PUT (``If-None-Match: *``: 412 means the key
exists). Where the endpoint rejects that header as unsupported (501
``NotImplemented``, or an SDK too old to send it), it falls back to the claim
protocol of :mod:`ephemera.storage.claims`, and keeps using it for that backend
object. (A store that silently *ignores* the header cannot be detected; set
``conditional_put = False`` on the object for such a store.) The IBM COS backend
always uses the claim protocol.

``put`` returns the server's ``Date`` header as ``last_modified`` (a PUT response
carries no Last-Modified); ``head`` and ``list`` report the stored LastModified.

Calls retry with botocore's ``standard`` retry mode (throttling, 5xx, connection
errors, with backoff); what still fails is mapped by
:mod:`ephemera.storage.aws_s3.errors`, with credentials scrubbed from messages.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence, TypeVar

from ephemera.errors import NoSuchBucketError, NoSuchKeyError, StorageError
from ephemera.storage import claims
from ephemera.storage.aws_s3.config import S3Settings, s3_settings
from ephemera.storage.aws_s3.errors import TRANSIENT_CODES, error_code, install_log_redaction, is_client_error, to_storage_error
from ephemera.storage.base import ObjectInfo, StorageTraits, check_presign_method
from ephemera.storage.keys import validate_bucket, validate_key, validate_prefix
from ephemera.timeutil import now_utc

if TYPE_CHECKING:
    from ephemera.config import Config

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_ATTEMPTS = 5  # total attempts per call, botocore "standard" retry mode
DELETE_BATCH = 1000  # keys per DeleteObjects request (the most S3 takes)
CONFLICT_RETRIES = 5  # repeats of a conditional PUT answered 409 ConditionalRequestConflict
_UNSUPPORTED_CONDITIONAL = frozenset({"NotImplemented", "501", "NotImplementedException"})


def client_config_options(custom_endpoint: bool, max_attempts: int = MAX_ATTEMPTS) -> dict[str, Any]:
    """Keyword arguments for ``botocore.config.Config`` (or ``ibm_botocore``'s)."""
    return {
        "retries": {"mode": "standard", "max_attempts": max_attempts},
        "connect_timeout": 10,
        "read_timeout": 60,
        "max_pool_connections": 32,
        # S3-compatible stores reject the newer default CRC checksum headers
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
        "s3": {"addressing_style": "path" if custom_endpoint else "auto"},
    }


def _response_time(response: dict) -> datetime:
    """The server's Date header of a response, else now (both timezone-aware)."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if date:
        try:
            return parsedate_to_datetime(date).astimezone(timezone.utc)
        except (TypeError, ValueError):
            pass
    return now_utc()


class S3CompatibleStorage:
    """The Storage interface over an S3 client; subclasses build ``self._client``."""

    backend = ""
    traits: StorageTraits  # each backend declares its own
    # conditional PUT (If-None-Match: *) is tried first; False: claims only
    conditional_put = True
    # what to tell a user whose credentials are refused
    credentials_hint = ""

    def __init__(self, client: Any, secrets: list[str], *, page_size: int = 1000, claim_settle: float = claims.DEFAULT_SETTLE):
        self._client = client
        self._secrets = list(secrets)
        self.page_size = page_size  # keys per list request (S3 returns at most 1000)
        self.claim_settle = claim_settle  # settle time of the claim protocol, seconds
        install_log_redaction(self._secrets)

    # plumbing ---------------------------------------------------------------------
    @staticmethod
    def _check(bucket: str, key: str) -> None:
        """Refuse a bad bucket name or key before any request is sent."""
        validate_bucket(bucket)
        validate_key(key)

    def _call(self, operation: str, bucket: str, key: str | None, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except StorageError:
            raise
        except Exception as exc:  # SDK errors of either SDK, mapped by code/class name
            raise to_storage_error(
                exc, operation, bucket, key, secrets=self._secrets, credentials_hint=self.credentials_hint
            ) from None

    def _info(self, key: str, obj: dict) -> ObjectInfo:
        size = obj.get("Size", obj.get("ContentLength", 0))
        return ObjectInfo(key, int(size), str(obj.get("ETag", "")).strip('"'), obj["LastModified"].astimezone(timezone.utc))

    # interface --------------------------------------------------------------------
    def put(self, bucket: str, key: str, data: bytes) -> ObjectInfo:
        self._check(bucket, key)
        data = bytes(data)
        resp = self._call("put", bucket, key, lambda: self._client.put_object(Bucket=bucket, Key=key, Body=data))
        return ObjectInfo(key, len(data), str(resp.get("ETag", "")).strip('"'), _response_time(resp))

    def put_if_absent(self, bucket: str, key: str, data: bytes) -> bool:
        self._check(bucket, key)
        data = bytes(data)
        if self.conditional_put:
            created = self._conditional_put(bucket, key, data)
            if created is not None:
                return created
        return claims.put_if_absent_by_claims(self, bucket, key, data, settle=self.claim_settle)

    def _conditional_put(self, bucket: str, key: str, data: bytes) -> bool | None:
        """True/False from a conditional PUT; None if the endpoint does not support it."""
        for attempt in range(CONFLICT_RETRIES):
            try:
                self._client.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
                return True
            except Exception as exc:
                code, status = error_code(exc)
                if code in ("PreconditionFailed", "ConditionalRequestFailed") or status == 412:
                    return False
                if code == "ConditionalRequestConflict" or status == 409:
                    time.sleep(0.05 * 2**attempt)  # a concurrent conditional write is in flight
                    continue
                unsupported = (
                    code in _UNSUPPORTED_CONDITIONAL
                    or status == 501
                    or (not is_client_error(exc) and type(exc).__name__ == "ParamValidationError")
                )
                if unsupported:
                    log.info(
                        "%s endpoint does not support conditional PUT (%s); using claim objects for put_if_absent",
                        self.backend,
                        code or type(exc).__name__,
                    )
                    self.conditional_put = False
                    return None
                raise to_storage_error(
                    exc, "put_if_absent", bucket, key, secrets=self._secrets, credentials_hint=self.credentials_hint
                ) from None
        raise StorageError(
            f"put_if_absent of '{key}' in bucket '{bucket}' kept conflicting with concurrent writes; try again", retryable=True
        )

    def get(self, bucket: str, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        self._check(bucket, key)
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if byte_range is not None:
            start, end = byte_range
            if not (isinstance(start, int) and isinstance(end, int)) or start < 0:
                raise StorageError(f"byte_range {byte_range!r} for '{key}' is invalid: use (start, end) with 0 <= start")
            if end < start:
                self.head(bucket, key)  # still report a missing object
                return b""
            kwargs["Range"] = f"bytes={start}-{end}"

        def fetch() -> bytes:
            try:
                resp = self._client.get_object(**kwargs)
            except Exception as exc:
                code, status = error_code(exc)
                if byte_range is not None and (code == "InvalidRange" or status == 416):
                    return b""  # the range starts past the end of the object
                raise
            body = resp["Body"]
            try:
                return body.read()
            finally:
                body.close()

        return self._call("get", bucket, key, fetch)

    def head(self, bucket: str, key: str) -> ObjectInfo:
        self._check(bucket, key)
        try:
            resp = self._call("head", bucket, key, lambda: self._client.head_object(Bucket=bucket, Key=key))
        except NoSuchKeyError:
            # HEAD has no error body: a missing bucket also answers 404
            if not self.bucket_exists(bucket):
                raise NoSuchBucketError(bucket) from None
            raise
        return self._info(key, resp)

    def list(self, bucket: str, prefix: str = "", start_after: str = "") -> Iterator[ObjectInfo]:
        validate_bucket(bucket)
        validate_prefix(prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        extra = {"StartAfter": start_after} if start_after else {}
        pages = paginator.paginate(Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": self.page_size}, **extra)
        iterator = iter(pages)
        while True:
            page = self._call("list", bucket, None, lambda: next(iterator, None))
            if page is None:
                return
            for obj in page.get("Contents", []):
                yield self._info(obj["Key"], obj)

    def delete(self, bucket: str, key: str) -> None:
        self._check(bucket, key)
        try:
            self._call("delete", bucket, key, lambda: self._client.delete_object(Bucket=bucket, Key=key))
        except NoSuchKeyError:
            return

    def delete_many(self, bucket: str, keys: Sequence[str]) -> None:
        """DeleteObjects, 1,000 keys a request (quiet: the reply names only failures)."""
        for key in keys:
            self._check(bucket, key)
        for i in range(0, len(keys), DELETE_BATCH):
            chunk = keys[i : i + DELETE_BATCH]
            request = {"Objects": [{"Key": k} for k in chunk], "Quiet": True}
            resp = self._call("delete", bucket, None, lambda: self._client.delete_objects(Bucket=bucket, Delete=request))
            refused = [e for e in resp.get("Errors") or [] if e.get("Code") != "NoSuchKey"]
            if refused:
                first = refused[0]
                raise StorageError(
                    f"cannot delete '{first.get('Key')}' in bucket '{bucket}': {first.get('Code')} "
                    f"({len(refused)} of {len(chunk)} keys of this request refused)",
                    retryable=first.get("Code") in TRANSIENT_CODES,
                )

    def create_bucket(self, bucket: str) -> None:
        validate_bucket(bucket)
        if self.bucket_exists(bucket):
            return
        try:
            self._client.create_bucket(Bucket=bucket, **self._create_bucket_options())
        except Exception as exc:
            code, _ = error_code(exc)
            if code == "BucketAlreadyOwnedByYou":
                return
            if code == "BucketAlreadyExists":
                raise StorageError(
                    f"bucket '{bucket}' already exists and belongs to another account; choose another name for 'storage.bucket'"
                ) from None
            raise to_storage_error(
                exc, "create_bucket", bucket, secrets=self._secrets, credentials_hint=self.credentials_hint
            ) from None

    def _create_bucket_options(self) -> dict[str, Any]:
        return {}

    def presign(self, bucket: str, key: str, method: str = "GET", expires: int = 3600) -> str | None:
        """A SigV4 query-string URL (``X-Amz-Credential`` names the access key id, never the
        secret); AWS caps ``expires`` at 7 days."""
        self._check(bucket, key)
        operation = check_presign_method(method)
        return self._call(
            "presign",
            bucket,
            key,
            lambda: self._client.generate_presigned_url(
                operation, Params={"Bucket": bucket, "Key": key}, ExpiresIn=int(expires), HttpMethod=method
            ),
        )

    def bucket_exists(self, bucket: str) -> bool:
        validate_bucket(bucket)
        try:
            self._client.head_bucket(Bucket=bucket)
            return True
        except Exception as exc:
            code, status = error_code(exc)
            if code in ("404", "NoSuchBucket", "NotFound", "403", "AccessDenied") or status in (403, 404):
                return False
            raise to_storage_error(
                exc, "bucket_exists", bucket, secrets=self._secrets, credentials_hint=self.credentials_hint
            ) from None


class S3Storage(S3CompatibleStorage):
    """AWS S3 or an S3-compatible endpoint, through boto3."""

    backend = "aws_s3"
    traits = StorageTraits(conditional_put=True, paged_listing=True, same_host=False, fs_events=False, buckets_on_demand=False)
    credentials_hint = "check aws_s3.access_key_id and aws_s3.secret_access_key (or the AWS default credential chain)"

    def __init__(self, settings: S3Settings, *, max_attempts: int = MAX_ATTEMPTS, **options: Any):
        """``options``: ``page_size``, ``claim_settle`` (see S3CompatibleStorage)."""
        import boto3  # cloud SDK: imported only when this client is first used
        from botocore.config import Config as BotoConfig  # cloud SDK: imported only when this client is first used

        self.settings = settings
        session = boto3.session.Session()
        client = session.client(
            "s3",
            endpoint_url=settings.endpoint,
            region_name=settings.region,
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=settings.secret_access_key,
            aws_session_token=settings.session_token,
            config=BotoConfig(**client_config_options(settings.endpoint is not None, max_attempts)),
        )
        super().__init__(client, settings.secret_values(), **options)

    @classmethod
    def from_config(cls, config: Config, **options: Any) -> "S3Storage":
        return cls(s3_settings(config), **options)

    def _create_bucket_options(self) -> dict[str, Any]:
        if self.settings.endpoint is None and self.settings.region != "us-east-1":
            return {"CreateBucketConfiguration": {"LocationConstraint": self.settings.region}}
        return {}

    def __repr__(self) -> str:
        return f"S3Storage(endpoint={self.settings.endpoint!r}, region={self.settings.region!r})"
