"""Every event delivery format, parsed into one :class:`~ephemera.model.events.Event`.

Formats (see DESIGN.md, "Events"):

- OpenWhisk alarm feed: the trigger payload merged into params; Ephemera's
  ``functions-create.sh`` puts ``ephemera_kind: alarm`` and ``ephemera_trigger`` in
  it. No fire time is added by the feed; the local runtime adds ``ephemera_time``.
- EventBridge Scheduler (``ephemera deploy aws``): the schedule's input, an alarm with
  ``ephemera_time`` (its scheduled time) and ``ephemera_schedule_arn``.
- OpenWhisk COS feed ``/whisk.system/cos/changes``: ``{bucket, endpoint, key,
  notification: {bucket_name, object_name, event_type, object_length, ...}}``.
- Manual invoke: anything else; ``ephemera_kind: manual`` may be explicit.

Reserved parameter names start with ``ephemera_``; ``config`` carries the bound
config. Everything else a caller passes lands in ``Event.payload``.
"""

from __future__ import annotations

from typing import Any, Callable

from ephemera.errors import EventError
from ephemera.events import cloud_events as cloud
from ephemera.events.fields import MAX_PAYLOAD_BYTES, NON_EVENT_PARAMS, int_or_none, payload, require_str
from ephemera.model.events import KINDS, Event
from ephemera.timeutil import parse_time

__all__ = ["Event", "KINDS", "is_recognised_event", "parse_event"]


def parse_openwhisk_cos(params: dict) -> Event:
    note = params.get("notification")
    if not isinstance(note, dict):
        raise EventError("notification", "missing or not an object", "a COS changes event carries a notification object")
    bucket = require_str(
        "notification.bucket_name", note.get("bucket_name") or params.get("bucket"), "the notification must name it"
    )
    key = require_str("notification.object_name", note.get("object_name") or params.get("key"), "the notification must name it")
    event_type = note.get("event_type", "Object:Write")
    if event_type != "Object:Write":
        raise EventError(
            "notification.event_type", f"'{event_type}' is not an object write", "bind only Object:Write events to this action"
        )
    return Event(
        kind="object_write",
        source="openwhisk_cos",
        time=parse_time("notification.request_time", note.get("request_time")),
        bucket=bucket,
        key=key,
        etag=(note.get("object_etag") or None),
        size=int_or_none("notification.object_length", note.get("object_length")),
        trigger=params.get("ephemera_trigger"),
        payload=payload(params, {"bucket", "endpoint", "key", "notification"}),
    )


def parse_local_write(params: dict) -> Event:
    """The local runtime's bucket-watcher event (also used by tests and `ephemera invoke`)."""
    return Event(
        kind="object_write",
        source="local_watch",
        time=parse_time("ephemera_time", params.get("ephemera_time")),
        bucket=require_str("bucket", params.get("bucket"), "a bucket-write event names the bucket written"),
        key=require_str("key", params.get("key"), "a bucket-write event names the object key written"),
        etag=params.get("etag"),
        size=int_or_none("size", params.get("size")),
        trigger=params.get("ephemera_trigger"),
        payload=payload(params, {"bucket", "key", "etag", "size"}),
    )


def _alarm_source(params: dict) -> str:
    if "ephemera_schedule_arn" in params:  # the input an EventBridge schedule of `ephemera deploy aws` sends
        return "eventbridge_scheduler"
    return "openwhisk_alarm" if "ephemera_time" not in params else "local_alarm"


def parse_alarm(params: dict) -> Event:
    return Event(
        kind="alarm",
        source=_alarm_source(params),
        time=parse_time("ephemera_time", params.get("ephemera_time")),
        trigger=params.get("ephemera_trigger"),
        payload=payload(params, set()),
    )


def parse_manual(params: dict) -> Event:
    return Event(
        kind="manual",
        source="manual",
        time=parse_time("ephemera_time", params.get("ephemera_time")),
        trigger=params.get("ephemera_trigger"),
        payload=payload(params, set()),
    )


# (detector, parser), tried in order, most specific first
FORMATS: list[tuple[Callable[[dict], bool], Callable[[dict], Event]]] = [
    (cloud.is_code_engine_cos, cloud.parse_code_engine_cos),
    (cloud.is_code_engine_ping, cloud.parse_code_engine_ping),
    (cloud.is_s3_notification, cloud.parse_s3_notification),
    (lambda p: isinstance(p.get("notification"), dict) or ("notification" in p and "key" in p), parse_openwhisk_cos),
    (lambda p: p.get("ephemera_kind") == "object_write", parse_local_write),
    (lambda p: p.get("ephemera_kind") == "alarm", parse_alarm),
    (lambda p: p.get("ephemera_kind") in (None, "manual"), parse_manual),
]


def is_recognised_event(params: Any) -> bool:
    """Whether params are a delivery of a known format or name their kind explicitly
    (``ephemera_kind``); anything else would only be read as an implicit manual event."""
    if not isinstance(params, dict):
        return False
    if params.get("ephemera_kind") is not None:
        return True
    return any(detect(params) for detect, parse in FORMATS if parse is not parse_manual)


def parse_event(params: Any) -> Event:
    """The :class:`Event` in an action's params; raises EventError naming the bad field."""
    if not isinstance(params, dict):
        raise EventError(
            "<params>", f"expected a JSON object, got {type(params).__name__}", "invoke the action with a JSON object"
        )
    kind = params.get("ephemera_kind")
    if kind is not None and kind not in KINDS:
        raise EventError("ephemera_kind", f"'{kind}' is not one of {', '.join(KINDS)}", "fix the trigger payload")
    _check_size(params)
    for detect, parse in FORMATS:
        if detect(params):
            return parse(params)
    raise EventError("<params>", "matches no known event format", "see DESIGN.md, 'Events'")


def _check_size(params: dict) -> None:
    import json

    try:
        size = len(json.dumps({k: v for k, v in params.items() if k not in NON_EVENT_PARAMS}, default=str))
    except (TypeError, ValueError):
        raise EventError("<params>", "is not JSON-serialisable", "send plain JSON") from None
    if size > MAX_PAYLOAD_BYTES:
        raise EventError(
            "<params>",
            f"is {size} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit",
            "put large inputs in object storage and pass their key",
        )
