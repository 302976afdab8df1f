"""The reaper's preemption rule on written heartbeats and the local engine's view, with an
engine that records each apply: recovered with the same run id, exhausted to FAILED
(PREEMPTED), the on-demand fallback, and what is never a preemption."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from ephemera import layout
from ephemera.context import Context
from ephemera.events.formats import parse_event
from ephemera.lifecycle import request_run
from ephemera.lifecycle.reaper import reap_run
from ephemera.model.runs import RunState
from ephemera.timeutil import now_utc
from ephemera.vm.local_stack import LocalStack
from tests.spot.helpers import RecordingEngine, preempted_beat, write_beat, write_preempted_json


@pytest.fixture
def running(local_config):
    """(ctx, engine, run) for a run RUNNING on the recording engine, built from ``spot``/``timeouts`` overrides."""

    def build(spot=None, timeouts=None, key="spot"):
        engine = RecordingEngine()
        config = local_config(spot=spot or {}, timeouts={"heartbeat": "60s", "boot": "5m", **(timeouts or {})})
        ctx = Context(config, engine=engine)
        run = request_run(ctx, parse_event({"idempotency_key": key})).run
        ctx.ledger.transition(run.run_id, RunState.APPLYING, "applying workspace")
        run = ctx.ledger.transition(run.run_id, RunState.RUNNING, "apply completed")
        return ctx, engine, run

    return build


def test_a_preempted_heartbeat_recovers_the_same_run_with_the_next_recovery(running):
    ctx, engine, run = running()
    preempted_beat(ctx, run.run_id, 0, source="aws", action="terminate", age=121)  # AWS's 2-minute notice has run out
    why = reap_run(ctx, run)
    assert why.startswith("recovering from preemption (1/2)"), why
    record = ctx.ledger.get(run.run_id)
    assert record.state == RunState.RUNNING and record.recovery == 1
    assert engine.applies[-1]["recovery"] == 1 and engine.applies[-1]["run_id"] == run.run_id
    assert "spot" not in engine.applies[-1]  # still the user's choice: spot
    assert [t.reason for t in record.transitions if t.state == "APPLYING"][-1].startswith("recovering from preemption (1/2)")
    (lost,) = record.preemptions
    assert (lost.worker, lost.source, lost.why, lost.outcome, lost.recovery) == (0, "aws", "terminate", "recovered", 1)
    assert lost.notice_at and 121 <= lost.paid_seconds < 180
    assert record.hard_deadline == run.hard_deadline and record.job == run.job


def test_the_lost_vms_old_heartbeat_makes_the_new_vm_neither_preempted_nor_silent(running):
    ctx, engine, run = running(timeouts={"heartbeat": "5s"})
    preempted_beat(ctx, run.run_id, 0, age=30)  # older than the heartbeat grace
    assert reap_run(ctx, run).startswith("recovering")
    again = ctx.ledger.get(run.run_id)
    assert reap_run(ctx, again) is None  # the replacement has not beaten yet: the boot rule's time
    assert len(engine.applies) == 1 and ctx.ledger.get(run.run_id).state == RunState.RUNNING
    write_beat(ctx, run.run_id, 0, age=0)  # the replacement beats
    assert reap_run(ctx, ctx.ledger.get(run.run_id)) is None


def test_preempted_more_than_max_recoveries_ends_failed_preempted_and_destroyed(running):
    ctx, engine, run = running(spot={"max_recoveries": 1})
    preempted_beat(ctx, run.run_id, 0, age=3)
    assert reap_run(ctx, run).startswith("recovering from preemption (1/1)")
    preempted_beat(ctx, run.run_id, 0, age=0)  # the replacement is preempted too
    assert reap_run(ctx, ctx.ledger.get(run.run_id)) is None  # within its grace: its last checkpoint may be on the way
    time.sleep(2.1)
    why = reap_run(ctx, ctx.ledger.get(run.run_id))
    record = ctx.ledger.get(run.run_id)
    assert "after 1 recoveries (spot.max_recoveries = 1)" in why
    assert record.error.code == "PREEMPTED"
    assert "raise spot.max_recoveries" in record.error.message and 'spot.fallback = "on_demand"' in record.error.message
    assert [t.state for t in record.transitions][-3:] == ["FAILED", "DESTROYING", "DESTROYED"]
    assert engine.destroys == 1 and len(engine.applies) == 1
    assert [p.outcome for p in record.preemptions] == ["recovered", "failed"]


def test_fallback_on_demand_re_applies_once_with_spot_false(running):
    ctx, engine, run = running(spot={"max_recoveries": 1, "fallback": "on_demand"})
    preempted_beat(ctx, run.run_id, 0, age=3)
    reap_run(ctx, run)
    preempted_beat(ctx, run.run_id, 0, age=0)  # written after the recovery's apply: the replacement's
    write_preempted_json(ctx.config.home, run.run_id, 0)  # and the engine says it is gone: no need to wait the grace
    why = reap_run(ctx, ctx.ledger.get(run.run_id))
    assert why.startswith("recovering from preemption on on-demand capacity"), why
    assert engine.applies[-1]["spot"] is False and engine.applies[-1]["recovery"] == 2
    assert engine.applies[0].get("spot") is None  # the spot recovery kept spot
    record = ctx.ledger.get(run.run_id)
    assert record.on_demand and [p.outcome for p in record.preemptions] == ["recovered", "on_demand"]
    preempted_beat(ctx, run.run_id, 0, age=0)  # on-demand capacity lost anyway: no second fallback
    write_preempted_json(ctx.config.home, run.run_id, 0)
    reap_run(ctx, record)
    record = ctx.ledger.get(run.run_id)
    assert record.error.code == "PREEMPTED" and "on on-demand capacity" in record.error.message
    assert len(engine.applies) == 2


def test_no_recovery_starts_when_the_deadline_leaves_no_time_to_boot(running):
    ctx, engine, run = running(timeouts={"boot": "20m"})  # the hard timeout (10m) is shorter than a boot
    preempted_beat(ctx, run.run_id, 0, age=3)
    why = reap_run(ctx, run)
    record = ctx.ledger.get(run.run_id)
    assert "less than timeouts.boot (1200s) left before the hard deadline" in why
    assert record.error.code == "PREEMPTED" and record.state == RunState.DESTROYED
    assert engine.applies == []


def test_past_the_hard_deadline_the_run_times_out_and_is_never_recovered(running):
    ctx, engine, run = running()
    preempted_beat(ctx, run.run_id, 0)
    later = now_utc() + timedelta(minutes=11)
    reap_run(ctx, run, later)
    record = ctx.ledger.get(run.run_id)
    assert RunState.TIMED_OUT.value in [t.state for t in record.transitions]
    assert engine.applies == [] and record.preemptions == []


def test_an_error_reading_the_engines_view_is_no_preemption(running, monkeypatch):
    ctx, engine, run = running(timeouts={"heartbeat": "5s"})

    def broken(*args, **kwargs):
        raise ConnectionError("describe-instances: 503 Service Unavailable")

    monkeypatch.setattr(LocalStack, "preempted_workers", broken)
    write_beat(ctx, run.run_id, 0, age=1)
    assert reap_run(ctx, run) is None  # a healthy VM, an unreadable view: nothing happens
    write_beat(ctx, run.run_id, 0, age=30)  # silent, not preempted: the silent rule with its grace
    why = reap_run(ctx, ctx.ledger.get(run.run_id))
    record = ctx.ledger.get(run.run_id)
    assert "heartbeats stopped" in why and record.error.code == "VMS_SILENT"
    assert engine.applies == [] and record.preemptions == []


def test_the_local_engines_view_reports_a_reclaimed_vm_of_the_current_apply_only(running, tmp_path):
    ctx, engine, run = running()
    write_beat(ctx, run.run_id, 0, age=1)
    assert reap_run(ctx, run) is None
    write_preempted_json(ctx.config.home, run.run_id, 0)  # the VM was killed: no heartbeat said so
    why = reap_run(ctx, ctx.ledger.get(run.run_id))
    assert why.startswith("recovering from preemption (1/2)") and "engine: local VM reclaimed" in why
    (lost,) = ctx.ledger.get(run.run_id).preemptions
    assert lost.source == "engine" and lost.notice_at == ""
    assert reap_run(ctx, ctx.ledger.get(run.run_id)) is None  # the file predates the recovery's apply
    assert len(engine.applies) == 1


def test_a_vm_cannot_put_terminal_escapes_or_long_text_on_the_record(running):
    """A VM writes its own heartbeat: whatever it puts in ``preemption`` reaches the record,
    the CLI and the dashboard only as short printable text, with a known source."""
    ctx, engine, run = running()
    write_beat(
        ctx,
        run.run_id,
        0,
        age=130,
        state="preempted",
        preemption={"notice_at": "soon", "source": "\x1b]0;owned\x07", "action": "\x1b[2J" + "x" * 5000},
    )
    reap_run(ctx, run)
    (lost,) = ctx.ledger.get(run.run_id).preemptions
    assert lost.source == "heartbeat"
    assert "\x1b" not in lost.why and len(lost.why) <= 200
    assert lost.notice_at  # not "soon": the beat's own time stands in


def test_a_notice_waits_out_the_clouds_grace_unless_the_instance_is_already_gone(running):
    """AWS gives a spot VM two minutes between its interruption notice and the reclaim: the
    VM's last checkpoint may be on its way, so the replacement is not applied before."""
    ctx, engine, run = running()
    preempted_beat(ctx, run.run_id, 0, source="aws", age=30)
    assert reap_run(ctx, run) is None and engine.applies == []
    assert ctx.ledger.get(run.run_id).preemptions == []
    write_preempted_json(ctx.config.home, run.run_id, 0)  # the engine's view: the instance is gone
    assert reap_run(ctx, ctx.ledger.get(run.run_id)).startswith("recovering from preemption (1/2)")
    (lost,) = ctx.ledger.get(run.run_id).preemptions
    assert lost.source == "aws"  # the VM's own notice names the cloud; the engine only confirmed it


def test_a_preemption_is_told_to_who_asked_for_preempted_then_the_failure(local_config):
    from tests.fakes.receivers import HTTPReceiver

    http = HTTPReceiver()
    try:
        engine = RecordingEngine()
        config = local_config(
            spot={"max_recoveries": 1},
            timeouts={"boot": "5m"},
            notify={"webhook_url": http.url + "/hook", "webhook_states": ["PREEMPTED", "FAILED"], "timeout": 10},
        )
        ctx = Context(config, engine=engine)
        run = request_run(ctx, parse_event({"idempotency_key": "told"})).run
        ctx.ledger.transition(run.run_id, RunState.APPLYING, "applying workspace")
        run = ctx.ledger.transition(run.run_id, RunState.RUNNING, "apply completed")
        preempted_beat(ctx, run.run_id, 0, age=3)
        reap_run(ctx, run)
        write_preempted_json(ctx.config.home, run.run_id, 0)
        reap_run(ctx, ctx.ledger.get(run.run_id))
        posts = [p.json() for p in http.to("/hook")]
    finally:
        http.close()
    assert [p["state"] for p in posts] == ["PREEMPTED", "FAILED"]
    assert posts[0]["reason"].startswith("recovering from preemption (1/1)")
    assert posts[1]["error"]["code"] == "PREEMPTED"


def test_a_heartbeat_naming_another_run_is_not_this_runs_preemption(running):
    """Heartbeats are read under the run's own key; a body naming another run (written by
    whoever could write there) does not make this run recover."""
    ctx, engine, run = running()
    write_beat(ctx, run.run_id, 0, age=130, state="preempted", preemption={"source": "aws"})
    body_of_other = {"run_id": "another-run"}
    key = layout.heartbeat_key(run.run_id, 0)
    beat = json.loads(ctx.storage.get(ctx.config.state_bucket, key))
    ctx.storage.put(ctx.config.state_bucket, key, json.dumps({**beat, **body_of_other}).encode())
    assert reap_run(ctx, run) is None and engine.applies == []
