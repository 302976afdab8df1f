"""Per-run VM credentials from AWS STS: temporary keys that reach only the run's prefixes.

The controller's own keys never leave it. For each run it asks STS for temporary
credentials (access key id, secret access key, session token) with an inline *session
policy* naming only the run's prefixes (:func:`ephemera.layout.run_prefixes`), and,
for a run fired by an object write, that one object, read only
(:mod:`ephemera.bundle.inputs`):

- ``AssumeRole`` of ``aws_s3.vm_role_arn`` when one is set: the session's rights are the
  role's policies intersected with the session policy;
- else ``GetFederationToken`` with the configured keys (an IAM user's long-term keys:
  STS refuses the call with temporary ones): the federated user's rights are the
  user's policies intersected with the session policy.

A second, *boot session* (:func:`boot_policy`: only the run's credentials objects,
its bundle and its failure marker, for the boot timeout) signs the presigned URLs the
boot documents carry, so no URL in a Terraform input names the controller's key.

Duration: until the run's hard deadline plus a margin, clamped up to STS's minimum of
900 s. Above the most STS grants (GetFederationToken 129600 s; AssumeRole the role's
MaxSessionDuration, ``aws_s3.vm_role_max_session_seconds``, default 3600) the run is
refused rather than left with VMs whose keys expire mid-run: the fix is a longer role
session or a shorter ``timeouts.hard``. Keys that do expire (a deadline moved later)
make the VM's storage calls fail; its heartbeats stop and the reaper ends the run.
boto3 is imported only when keys are minted.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from ephemera.errors import ConfigError, StorageError

MIN_SECONDS = 900  # the shortest session STS grants (AssumeRole and GetFederationToken)
FEDERATION_MAX_SECONDS = 129600  # GetFederationToken with an IAM user's keys: 36 hours
_WILDCARDS = re.compile(r"[*?$]")  # IAM policy wildcards and variables: never in a granted prefix
READ = ["s3:GetObject"]
WRITE = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]


def _resource(bucket: str, prefix: str) -> str:
    if _WILDCARDS.search(prefix) or _WILDCARDS.search(bucket):
        raise ConfigError("run_id", f"'{prefix}' holds an IAM policy wildcard", "use run ids and prefixes without * ? $")
    return f"arn:aws:s3:::{bucket}/{prefix}*" if prefix.endswith("/") else f"arn:aws:s3:::{bucket}/{prefix}"


def _object(bucket: str, key: str) -> str:
    """The ARN of exactly one object (a key ending in '/' stays one key, never a prefix)."""
    if _WILDCARDS.search(key) or _WILDCARDS.search(bucket):
        raise ConfigError("event.key", f"'{key}' holds an IAM policy wildcard", "name objects without * ? $")
    return f"arn:aws:s3:::{bucket}/{key}"


def session_policy(scope: Any) -> dict:
    """The inline session policy of a run's VMs (``scope``: a :class:`ephemera.storage.spec.RunScope`)."""
    p = scope.prefixes
    written = [(scope.state_bucket, x) for x in p.write] + [(scope.output_bucket, x) for x in p.output]
    statements: list[dict[str, Any]] = [
        {"Sid": "ReadRun", "Effect": "Allow", "Action": READ, "Resource": [_resource(scope.state_bucket, x) for x in p.read]},
        {"Sid": "WriteRun", "Effect": "Allow", "Action": WRITE, "Resource": [_resource(b, x) for b, x in written]},
    ]
    if p.inputs:  # the object whose write fired the run: that key alone, read only
        statements.append(
            {
                "Sid": "ReadEvent",
                "Effect": "Allow",
                "Action": READ,
                "Resource": [_object(bucket, key) for bucket, key in p.inputs],
            }
        )
    by_bucket: dict[str, list[str]] = {}
    for bucket, prefix in written:
        by_bucket.setdefault(bucket, []).append(prefix + "*")
    for i, (bucket, prefixes) in enumerate(sorted(by_bucket.items())):
        statements.append(
            {
                "Sid": f"ListRun{i}",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}"],
                "Condition": {"StringLike": {"s3:prefix": prefixes}},
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def session_seconds(needed: int, most: int, field: str) -> int:
    """``needed`` clamped up to STS's minimum; ConfigError naming ``field`` when above ``most``."""
    if needed > most:
        raise ConfigError(
            field,
            f"the run's VMs need credentials for {needed} s (until its hard deadline), STS grants at most {most} s here",
            "raise the role's MaxSessionDuration and aws_s3.vm_role_max_session_seconds, or shorten timeouts.hard",
        )
    return max(MIN_SECONDS, int(needed))


def session_name(run_id: str, most: int) -> str:
    """A session / federated user name STS accepts ([\\w+=,.@-], 2..``most`` chars) naming the run."""
    clean = re.sub(r"[^\w+=,.@-]", "-", run_id)
    if len(clean) + 4 <= most:
        return f"eph-{clean}"
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:10]
    return f"eph-{clean[: most - 15]}-{digest}"


def boot_policy(objects: list[tuple[str, str, str]]) -> dict:
    """The session policy of a run's *boot session*: only the named objects, each with its
    one method (``(method, bucket, key)``: GET the credentials object and the bundle,
    DELETE the credentials object, PUT the failure marker)."""
    actions = {"GET": "s3:GetObject", "PUT": "s3:PutObject", "DELETE": "s3:DeleteObject"}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": f"Boot{i}", "Effect": "Allow", "Action": [actions[method]], "Resource": [_resource(bucket, key)]}
            for i, (method, bucket, key) in enumerate(objects)
        ],
    }


def mint(
    settings: Any, run_id: str, policy: dict, needed: int, role_arn: str | None, role_max_seconds: int, sts_endpoint: str | None
) -> dict:
    """Temporary credentials under ``policy`` for at least ``needed`` seconds: the ``aws_s3``
    section keys they make (``access_key_id``, ``secret_access_key``, ``session_token``)."""
    import boto3  # cloud SDK: imported only when this client is first used

    document = json.dumps(policy, separators=(",", ":"))
    client = boto3.session.Session().client(
        "sts",
        endpoint_url=sts_endpoint,
        region_name=settings.region,
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
        aws_session_token=settings.session_token,
    )
    if role_arn:
        seconds = session_seconds(needed, role_max_seconds, "aws_s3.vm_role_max_session_seconds")
    else:
        seconds = session_seconds(needed, FEDERATION_MAX_SECONDS, "timeouts.hard")
    try:
        if role_arn:
            reply = client.assume_role(
                RoleArn=role_arn, RoleSessionName=session_name(run_id, 64), Policy=document, DurationSeconds=seconds
            )
        else:
            reply = client.get_federation_token(Name=session_name(run_id, 32), Policy=document, DurationSeconds=seconds)
    except Exception as exc:  # botocore's errors: their text names the call and the code, never a secret
        code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code") or type(exc).__name__
        raise StorageError(
            f"STS could not mint the run's VM credentials ({'AssumeRole' if role_arn else 'GetFederationToken'}: "
            f"{code}); set aws_s3.vm_role_arn to a role the controller may assume, or give the "
            "controller an IAM user's keys",
            retryable=code in ("Throttling", "ServiceUnavailable"),
        ) from None
    creds = reply["Credentials"]
    return {
        "access_key_id": creds["AccessKeyId"],
        "secret_access_key": creds["SecretAccessKey"],
        "session_token": creds["SessionToken"],
    }
