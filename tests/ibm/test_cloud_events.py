"""Cloud event delivery formats: Code Engine cron and COS subscriptions, AWS S3 notifications."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import pytest

from ephemera.errors import EventError
from ephemera.events.cloud_events import event_from_environment, s3_notification_events
from ephemera.events.formats import parse_event

# Body of a Code Engine COS subscription, as the Code Engine docs show it.
CE_COS_BODY = {
    "bucket": "ephemera-state",
    "endpoint": "",
    "key": "outputs/nightly-20261121T0200Z/_SUCCESS.json",
    "notification": {
        "bucket_name": "ephemera-state",
        "content_type": "application/json",
        "event_type": "Object:Write",
        "format": "2.0",
        "object_etag": "f3a9dbde30fdf48abc23e5f8b485d6e5",
        "object_length": "1064",
        "object_name": "outputs/nightly-20261121T0200Z/_SUCCESS.json",
        "request_id": "67a2048a-abcd-abcd-9e0c-968744094b85",
        "request_time": "2026-11-21T03:18:30.963Z",
    },
    "operation": "Object:Write",
}
PING_HEADERS = {
    "Ce-Id": "c329ed76-5004-4383-a3cc-c7a9b82e3ac6",
    "Ce-Source": "/apis/v1/namespaces/6b0v3x9xek5/pingsources/ephemera-nightly",
    "Ce-Specversion": "1.0",
    "Ce-Time": "2026-11-21T02:00:00.497637287Z",
    "Ce-Type": "dev.knative.sources.ping",
    "Content-Type": "application/json",
}
S3_RECORD = {
    "eventVersion": "2.1",
    "eventSource": "aws:s3",
    "awsRegion": "us-east-1",
    "eventTime": "2026-11-21T03:18:30.963Z",
    "eventName": "ObjectCreated:Put",
    "s3": {
        "s3SchemaVersion": "1.0",
        "bucket": {"name": "ephemera-state", "arn": "arn:aws:s3:::ephemera-state"},
        "object": {"key": "outputs/run+with+space%2B1/_SUCCESS.json", "size": 1064, "eTag": "0123abcd", "sequencer": "0A1B"},
    },
}


def test_code_engine_cos_app_body():
    event = parse_event({**CE_COS_BODY, "config": {"storage": {}}})
    assert event.kind == "object_write" and event.source == "code_engine_cos"
    assert (event.bucket, event.key) == ("ephemera-state", "outputs/nightly-20261121T0200Z/_SUCCESS.json")
    assert event.size == 1064 and event.etag == "f3a9dbde30fdf48abc23e5f8b485d6e5"
    assert event.time == datetime(2026, 11, 21, 3, 18, 30, 963000, tzinfo=timezone.utc)
    assert event.payload == {}


def test_code_engine_cos_delete_is_refused_naming_the_field():
    with pytest.raises(EventError) as info:
        parse_event({**CE_COS_BODY, "operation": "Object:Delete"})
    assert info.value.field == "operation"


def test_code_engine_cos_missing_key_names_the_field():
    body = {**CE_COS_BODY, "key": "", "notification": {**CE_COS_BODY["notification"], "object_name": ""}}
    with pytest.raises(EventError) as info:
        parse_event(body)
    assert info.value.field == "key"


def test_code_engine_job_reads_ce_data():
    env = {"CE_DATA": json.dumps(CE_COS_BODY), "CE_TYPE": "com.ibm.cloud.cos.document.write", "CE_SUBJECT": CE_COS_BODY["key"]}
    event = event_from_environment(env)
    assert event.source == "code_engine_cos" and event.key == CE_COS_BODY["key"]


@pytest.mark.parametrize(
    "env, field",
    [
        ({}, "CE_DATA"),
        ({"CE_DATA": "{not json"}, "CE_DATA"),
        ({"CE_DATA": "[]"}, "CE_DATA"),
        ({"CE_DATA": "{}", "CE_TYPE": "com.example.other"}, "CE_TYPE"),
    ],
)
def test_code_engine_job_errors_name_the_variable(env, field):
    with pytest.raises(EventError) as info:
        event_from_environment(env)
    assert info.value.field == field


def test_code_engine_cron_function_with_json_params():
    params = {"__ce_method": "POST", "__ce_headers": PING_HEADERS, "__ce_path": "/", "ephemera_trigger": "nightly", "workers": 2}
    event = parse_event(params)
    assert event.kind == "alarm" and event.source == "code_engine_cron"
    assert event.trigger == "nightly" and event.payload == {"workers": 2}
    assert event.time.year == 2026 and event.time.hour == 2


@pytest.mark.parametrize("encode", [lambda s: s, lambda s: base64.b64encode(s.encode()).decode()])
def test_code_engine_cron_function_with_body(encode):
    params = {"__ce_headers": {k.lower(): v for k, v in PING_HEADERS.items()}, "__ce_body": encode(json.dumps({"workers": 3}))}
    event = parse_event(params)
    assert event.trigger == "ephemera-nightly"  # from ce-source when the data does not name it
    assert event.payload == {"workers": 3}


def test_code_engine_cron_text_data_and_bad_time():
    params = {"__ce_headers": PING_HEADERS, "body": "hello"}
    assert parse_event(params).payload == {"body": "hello"}
    with pytest.raises(EventError) as info:
        parse_event({"__ce_headers": {**PING_HEADERS, "Ce-Time": "yesterday"}})
    assert info.value.field == "__ce_headers.ce-time"


def test_s3_notification_decodes_keys():
    event = parse_event({"Records": [S3_RECORD]})
    assert event.source == "aws_s3" and event.kind == "object_write"
    assert event.bucket == "ephemera-state"
    assert event.key == "outputs/run with space+1/_SUCCESS.json"
    assert event.size == 1064 and event.etag == "0123abcd"


def test_s3_multi_record_first_and_all():
    second = {**S3_RECORD, "s3": {**S3_RECORD["s3"], "object": {"key": "outputs/r2/_FAILURE.json", "size": 9}}}
    params = {"Records": [S3_RECORD, second]}
    assert parse_event(params).key == "outputs/run with space+1/_SUCCESS.json"
    assert [e.key for e in s3_notification_events(params)] == [
        "outputs/run with space+1/_SUCCESS.json",
        "outputs/r2/_FAILURE.json",
    ]


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda r: r.update(eventName="ObjectRemoved:Delete"), "Records[0].eventName"),
        (lambda r: r["s3"]["bucket"].pop("name"), "Records[0].s3.bucket.name"),
        (lambda r: r["s3"]["object"].update(size="big"), "Records[0].s3.object.size"),
    ],
)
def test_s3_errors_name_the_field(mutate, field):
    record = json.loads(json.dumps(S3_RECORD))
    mutate(record)
    with pytest.raises(EventError) as info:
        parse_event({"Records": [record]})
    assert info.value.field == field


def test_openwhisk_cos_still_parses():
    params = {
        "bucket": "b1",
        "endpoint": "s3.us-east",
        "key": "k",
        "notification": {"bucket_name": "b1", "object_name": "k", "event_type": "Object:Write", "object_length": "5"},
    }
    event = parse_event(params)
    assert event.source == "openwhisk_cos" and event.size == 5
