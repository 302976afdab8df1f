"""Event parsing of the formats issue 2 covers: OpenWhisk alarm, COS changes, manual."""

from __future__ import annotations

import pytest

from ephemera.errors import EventError
from ephemera.events.formats import parse_event

COS_CHANGES = {
    "bucket": "results",
    "endpoint": "s3.us-south.cloud-object-storage.appdomain.cloud",
    "key": "outputs/run-1/_SUCCESS.json",
    "notification": {
        "bucket_name": "results",
        "object_name": "outputs/run-1/_SUCCESS.json",
        "event_type": "Object:Write",
        "object_length": "1234",
        "request_time": "2026-11-21T10:00:00.000Z",
        "object_etag": "abc123",
    },
    "config": {"storage": {"bucket": "results"}},
}


def test_openwhisk_cos_changes():
    event = parse_event(COS_CHANGES)
    assert (event.kind, event.source) == ("object_write", "openwhisk_cos")
    assert (event.bucket, event.key, event.size, event.etag) == ("results", "outputs/run-1/_SUCCESS.json", 1234, "abc123")
    assert event.time.year == 2026
    assert "config" not in event.payload  # bound config is not event payload


def test_openwhisk_alarm_payload_merged_into_params():
    event = parse_event({"ephemera_kind": "alarm", "ephemera_trigger": "nightly", "params": {"folds": 3}})
    assert (event.kind, event.trigger, event.time) == ("alarm", "nightly", None)
    assert event.payload == {"params": {"folds": 3}}


def test_local_alarm_has_scheduled_time():
    event = parse_event({"ephemera_kind": "alarm", "ephemera_time": "2026-11-21T02:00:00Z"})
    assert event.source == "local_alarm" and event.time.hour == 2


def test_manual():
    event = parse_event({"run_id": "abc-1", "config": {}})
    assert event.kind == "manual" and event.payload == {"run_id": "abc-1"}


@pytest.mark.parametrize(
    "params, field",
    [
        (
            {**COS_CHANGES, "notification": {**COS_CHANGES["notification"], "event_type": "Object:Delete"}},
            "notification.event_type",
        ),
        ({**COS_CHANGES, "notification": {**COS_CHANGES["notification"], "object_length": "big"}}, "notification.object_length"),
        ({"notification": {"object_name": "k"}, "key": "k"}, "notification.bucket_name"),
        ({"notification": "nope", "key": "x"}, "notification"),
        ({"ephemera_kind": "webhook"}, "ephemera_kind"),
        ({"ephemera_kind": "alarm", "ephemera_time": "yesterday"}, "ephemera_time"),
        ({"ephemera_kind": "object_write", "bucket": "b"}, "key"),
        ({"blob": "x" * 300_000}, "<params>"),
    ],
)
def test_malformed_events_name_the_field(params, field):
    with pytest.raises(EventError) as info:
        parse_event(params)
    assert info.value.field == field and field in str(info.value)


def test_params_must_be_an_object():
    with pytest.raises(EventError, match="JSON object"):
        parse_event(["not", "a", "dict"])


def test_a_local_write_without_a_key_says_what_the_event_needs():
    with pytest.raises(EventError) as info:
        parse_event({"ephemera_kind": "object_write", "bucket": "results"})
    assert info.value.field == "key"
    assert "notification" not in str(info.value) and "object key" in str(info.value)


def test_one_time_parser_for_events_and_config():
    from datetime import datetime, timedelta, timezone
    from zoneinfo import ZoneInfo

    from ephemera.errors import ConfigError
    from ephemera.timeutil import parse_time

    utc = timezone.utc
    assert parse_time("t", "2026-11-21T10:00:00Z") == datetime(2026, 11, 21, 10, tzinfo=utc)
    assert parse_time("t", "2026-11-21T10:00:00") == datetime(2026, 11, 21, 10, tzinfo=utc)
    assert parse_time("t", 1_700_000_000) == parse_time("t", 1_700_000_000_000) == datetime.fromtimestamp(1_700_000_000, utc)
    assert parse_time("t", None) is None and parse_time("t", "") is None
    madrid = parse_time("t", "2026-01-10T09:00:00", default_tz=ZoneInfo("Europe/Madrid"))
    assert madrid.utcoffset() == timedelta(hours=1)
    with pytest.raises(EventError, match="'ephemera_time'.*not an ISO 8601 time"):
        parse_time("ephemera_time", "tomorrow")
    with pytest.raises(ConfigError, match="'triggers\\[0\\].once'.*not an ISO 8601 time"):
        parse_time("triggers[0].once", "tomorrow", error=ConfigError)
    with pytest.raises(EventError, match="got list"):
        parse_time("t", [1])


def test_cloud_formats_are_detected_through_the_events_module():
    event = parse_event(
        {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "eventTime": "2026-11-21T10:00:00Z",
                    "s3": {"bucket": {"name": "results"}, "object": {"key": "outputs/r%201/_SUCCESS.json", "size": 3}},
                }
            ]
        }
    )
    assert (event.source, event.bucket, event.key, event.size) == ("aws_s3", "results", "outputs/r 1/_SUCCESS.json", 3)
