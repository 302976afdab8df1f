"""Cloud delivery formats of events, parsed into :class:`~ephemera.model.events.Event`.

- **Code Engine cron (ping) subscription calling a function.** The function gets
  ``__ce_method``, ``__ce_headers`` (CloudEvent binary mode: ``ce-type:
  dev.knative.sources.ping``, ``ce-time``, ``ce-source:
  /apis/v1/namespaces/<project>/pingsources/<name>``) and the HTTP body: the
  subscription's ``--data`` when it is JSON (its keys as parameters, or the raw text in
  ``__ce_body``), else ``{"body": "<data>"}``.
- **Code Engine COS subscription** (apps and jobs only): the app's HTTP body is
  ``{bucket, endpoint: "", key, operation: "Object:Write", notification: {bucket_name,
  object_name, event_type, object_length (a string), object_etag, request_time, ...}}``
  with ``ce-type: com.ibm.cloud.cos.document.write``; a job gets the same JSON in the
  ``CE_DATA`` environment variable (see :func:`event_from_environment`).
- **AWS S3 notification**: ``{"Records": [{eventSource: "aws:s3", eventName:
  "ObjectCreated:Put", eventTime, s3: {bucket: {name}, object: {key (URL-encoded),
  size, eTag}}}]}``. :func:`parse_s3_notification` returns the first record's event,
  :func:`s3_notification_events` all of them.

Every parser raises :class:`EventError` naming the field that is missing or wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any, Mapping
from urllib.parse import unquote_plus

from ephemera.errors import EventError
from ephemera.timeutil import parse_time
from ephemera.events.fields import int_or_none, payload, require_str
from ephemera.model.events import Event

PING_TYPE = "dev.knative.sources.ping"
COS_WRITE_TYPE = "com.ibm.cloud.cos.document.write"
COS_WRITE = "Object:Write"
CE_PARAMS = ("__ce_method", "__ce_headers", "__ce_path", "__ce_query", "__ce_body")


def _headers(params: dict) -> dict[str, str]:
    raw = params.get("__ce_headers")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise EventError(
            "__ce_headers", f"expected an object, got {type(raw).__name__}", "Code Engine passes the request headers as an object"
        )
    return {str(k).lower(): (v[0] if isinstance(v, list) and v else v) for k, v in raw.items()}


def is_code_engine_ping(params: dict) -> bool:
    """A Code Engine function invoked by a cron (ping) subscription."""
    return isinstance(params.get("__ce_headers"), dict) and _headers(params).get("ce-type") == PING_TYPE


def ping_data(params: dict) -> dict:
    """The subscription's data: top-level keys, or a JSON ``__ce_body`` (maybe base64).
    Code Engine's cron documentation names the data ``body`` where the function
    interface names it ``__ce_body``: a string ``body`` without ``__ce_body`` is read the same way."""
    data = {k: v for k, v in params.items() if k not in CE_PARAMS}
    body = params.get("__ce_body")
    if body in (None, "") and isinstance(params.get("body"), str):
        body = data.pop("body")
    if body not in (None, ""):
        if not isinstance(body, str):
            raise EventError("__ce_body", f"expected a string, got {type(body).__name__}", "send the cron data as JSON")
        text = body
        try:
            parsed = json.loads(text)
        except ValueError:
            try:
                parsed = json.loads(base64.b64decode(text, validate=True).decode())
            except (ValueError, binascii.Error, UnicodeDecodeError):
                parsed = {"body": text}
        if not isinstance(parsed, dict):
            parsed = {"body": parsed}
        data = {**parsed, **data}
    return data


def parse_code_engine_ping(params: dict) -> Event:
    headers = _headers(params)
    if headers.get("ce-type") != PING_TYPE:
        raise EventError(
            "__ce_headers.ce-type", f"'{headers.get('ce-type')}' is not {PING_TYPE}", "bind a Code Engine cron subscription"
        )
    data = ping_data(params)
    trigger = data.get("ephemera_trigger")
    if not trigger:
        source = headers.get("ce-source") or ""
        trigger = source.rstrip("/").rpartition("/")[2] or None if "pingsources/" in source else None
    return Event(
        kind="alarm",
        source="code_engine_cron",
        time=parse_time("__ce_headers.ce-time", headers.get("ce-time")),
        trigger=trigger,
        payload=payload(data, set()),
    )


def is_code_engine_cos(params: dict) -> bool:
    """A Code Engine COS subscription body (app request body, or a job's CE_DATA)."""
    return "operation" in params and ("notification" in params or "key" in params)


def parse_code_engine_cos(params: dict, headers: Mapping[str, str] | None = None) -> Event:
    note = params.get("notification") or {}
    if not isinstance(note, dict):
        raise EventError(
            "notification",
            f"expected an object, got {type(note).__name__}",
            "a COS subscription event carries a notification object",
        )
    operation = params.get("operation")
    if operation != COS_WRITE:
        raise EventError("operation", f"'{operation}' is not {COS_WRITE}", "subscribe with --event-type write")
    bucket = require_str(
        "bucket", params.get("bucket") or note.get("bucket_name"), "a COS subscription event names the bucket written"
    )
    key = require_str(
        "key",
        params.get("key") or note.get("object_name") or (headers or {}).get("ce-subject"),
        "a COS subscription event names the object key written",
    )
    return Event(
        kind="object_write",
        source="code_engine_cos",
        time=parse_time("notification.request_time", note.get("request_time")),
        bucket=bucket,
        key=key,
        etag=note.get("object_etag") or None,
        size=int_or_none("notification.object_length", note.get("object_length")),
        trigger=params.get("ephemera_trigger"),
        payload=payload(params, {"bucket", "endpoint", "key", "operation", "notification", *CE_PARAMS}),
    )


def event_from_environment(environ: Mapping[str, str] | None = None) -> Event:
    """The event a Code Engine job was started with (``CE_DATA``, ``CE_TYPE``, ``CE_SUBJECT``)."""
    env = os.environ if environ is None else environ
    raw = env.get("CE_DATA")
    if not raw:
        raise EventError(
            "CE_DATA", "not set or empty", "run this job from a Code Engine COS subscription, or set CE_DATA to the event JSON"
        )
    try:
        data = json.loads(raw)
    except ValueError:
        raise EventError("CE_DATA", "is not JSON", "Code Engine puts the event body there as JSON") from None
    if not isinstance(data, dict):
        raise EventError(
            "CE_DATA", f"expected a JSON object, got {type(data).__name__}", "Code Engine puts the event body there as JSON"
        )
    ce_type = env.get("CE_TYPE", "")
    if ce_type == PING_TYPE:
        return parse_code_engine_ping(
            {
                "__ce_headers": {"ce-type": PING_TYPE, "ce-time": env.get("CE_TIME", ""), "ce-source": env.get("CE_SOURCE", "")},
                **data,
            }
        )
    if ce_type and not ce_type.startswith("com.ibm.cloud.cos.document."):
        raise EventError(
            "CE_TYPE", f"'{ce_type}' is not a COS or cron event", "subscribe the job to a COS bucket or a cron schedule"
        )
    return parse_code_engine_cos(data, {"ce-subject": env.get("CE_SUBJECT", "")})


def is_s3_notification(params: dict) -> bool:
    records = params.get("Records")
    return isinstance(records, list) and bool(records) and isinstance(records[0], dict) and "s3" in records[0]


def _s3_record(i: int, record: Any) -> Event:
    path = f"Records[{i}]"
    if not isinstance(record, dict):
        raise EventError(path, f"expected an object, got {type(record).__name__}", "send the S3 notification unchanged")
    name = record.get("eventName")
    if not isinstance(name, str) or not name.startswith("ObjectCreated:"):
        raise EventError(f"{path}.eventName", f"'{name}' is not an ObjectCreated event", "notify only s3:ObjectCreated:* events")
    s3 = record.get("s3")
    if not isinstance(s3, dict):
        raise EventError(f"{path}.s3", "missing or not an object", "send the S3 notification unchanged")
    bucket = require_str(f"{path}.s3.bucket.name", (s3.get("bucket") or {}).get("name"), "send the S3 notification unchanged")
    obj = s3.get("object") or {}
    key = require_str(f"{path}.s3.object.key", obj.get("key"), "send the S3 notification unchanged")
    return Event(
        kind="object_write",
        source="aws_s3",
        time=parse_time(f"{path}.eventTime", record.get("eventTime")),
        bucket=bucket,
        key=unquote_plus(key),
        etag=(obj.get("eTag") or obj.get("etag") or None),
        size=int_or_none(f"{path}.s3.object.size", obj.get("size")),
        payload={"event_name": name},
    )


def s3_notification_events(params: dict) -> list[Event]:
    """Every record of an S3 notification, in order."""
    records = params.get("Records")
    if not isinstance(records, list) or not records:
        raise EventError("Records", "missing or empty", "an S3 notification has a non-empty Records list")
    return [_s3_record(i, r) for i, r in enumerate(records)]


def parse_s3_notification(params: dict) -> Event:
    """The first record's event (an S3 notification usually carries one record)."""
    records = params.get("Records")
    if not isinstance(records, list) or not records:
        raise EventError("Records", "missing or empty", "an S3 notification has a non-empty Records list")
    event = _s3_record(0, records[0])
    extra = payload(params, {"Records"})
    return Event(**{**event.__dict__, "trigger": params.get("ephemera_trigger"), "payload": {**event.payload, **extra}})
