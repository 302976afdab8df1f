"""Each preemption, recovery and its paid time in ``ephemera runs show``, the timeline SVG
and the dashboard's run page; a VM-written reason stays text there."""

from __future__ import annotations

import urllib.request

from ephemera.cli.dashboard.server import DashboardServer
from ephemera.cli.runs import run_details
from ephemera.cli.timeline_svg import timeline_svg
from ephemera.context import Context
from ephemera.events.formats import parse_event
from ephemera.lifecycle import request_run
from ephemera.lifecycle.reaper import reap_run
from ephemera.model.runs import RunRecord, RunState
from tests.spot.helpers import RecordingEngine, preempted_beat, write_preempted_json


def _recovered_then_failed(local_config):
    ctx = Context(local_config(spot={"max_recoveries": 1}, timeouts={"boot": "5m"}), engine=RecordingEngine())
    run = request_run(ctx, parse_event({"idempotency_key": "views"})).run
    ctx.ledger.transition(run.run_id, RunState.APPLYING, "applying workspace")
    run = ctx.ledger.transition(run.run_id, RunState.RUNNING, "apply completed")
    preempted_beat(ctx, run.run_id, 0, source="aws", action="terminate", age=140)
    reap_run(ctx, run)
    preempted_beat(ctx, run.run_id, 0, source="aws", action="<b>stop</b>", age=0)
    write_preempted_json(ctx.config.home, run.run_id, 0)  # gone before its grace ran out
    reap_run(ctx, ctx.ledger.get(run.run_id))
    return ctx, ctx.ledger.get(run.run_id)


def test_runs_show_lists_each_preemption_its_outcome_and_paid_time(local_config):
    ctx, run = _recovered_then_failed(local_config)
    text = run_details(ctx, run)
    assert "spot: 2 VM(s) preempted, 1 recovery(ies)" in text
    assert "preemptions:" in text and "re-applied on spot (recovery 1)" in text
    assert "not recovered: FAILED (PREEMPTED)" in text
    assert "vm0 preempted" in text  # in the timeline, at the notice
    assert "recovering from preemption (1/1)" in text  # the transition's reason
    assert "error: PREEMPTED" in text
    lost = run.preemptions[0]
    assert 140 <= lost.paid_seconds < 200


def test_an_old_record_without_preemptions_shows_none():
    run = RunRecord.from_dict({"run_id": "r-old", "workspace": "ws", "engine": "terraform", "state": "DESTROYED"})
    assert run.preemptions == [] and run.recovery == 0 and run.on_demand is False
    assert 'class="preempted"' not in timeline_svg(run)


def test_the_svg_and_the_dashboard_page_mark_the_preemptions(local_config):
    ctx, run = _recovered_then_failed(local_config)
    svg = timeline_svg(run)
    assert svg.count('class="preempted"') == 2
    assert "<b>stop</b>" not in svg and "&lt;b&gt;stop&lt;/b&gt;" in svg
    server = DashboardServer(ctx, "127.0.0.1", 0, None, refresh=2).start()
    try:
        with urllib.request.urlopen(f"{server.base}/runs/{run.run_id}", timeout=10) as response:
            page = response.read().decode()
    finally:
        server.close()
    assert 'id="preemptions"' in page and "spot: 2 VM(s) preempted" in page
    assert "re-applied on spot (recovery 1)" in page and "<b>stop</b>" not in page
