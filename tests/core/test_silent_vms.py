"""The dead-VM rule (issue 11, defect 5) on written heartbeats: which silences end a run."""

from __future__ import annotations

import json
from datetime import timedelta

from ephemera import layout
from ephemera.context import Context
from ephemera.lifecycle import request_run
from ephemera.lifecycle.silent_vms import vms_silent
from ephemera.model.runs import RunState
from ephemera.timeutil import now_utc
from ephemera.events.formats import parse_event


def beat(ctx, run_id, worker, age, state="running"):
    body = {"run_id": run_id, "worker": worker, "state": state, "at": (now_utc() - timedelta(seconds=age)).isoformat()}
    ctx.storage.put(ctx.config.state_bucket, layout.heartbeat_key(run_id, worker), json.dumps(body).encode())


def test_which_silences_count_as_dead(local_config):
    ctx = Context(local_config(timeouts={"heartbeat": "60s"}, workspace={"variables": {"worker_count": 2}}))
    run = request_run(ctx, parse_event({"idempotency_key": "x"})).run
    ctx.ledger.transition(run.run_id, RunState.APPLYING)
    run = ctx.ledger.transition(run.run_id, RunState.RUNNING)
    now = now_utc()
    assert vms_silent(ctx, run, now) is None  # no heartbeat yet: the boot rule's case
    beat(ctx, run.run_id, 0, 5)
    beat(ctx, run.run_id, 1, 300)
    assert vms_silent(ctx, run, now) is None  # a helper VM died: its calls are re-claimed, the workload goes on
    beat(ctx, run.run_id, 0, 61)
    why = vms_silent(ctx, run, now)
    assert why and "worker 0: silent 60s" in why  # the workload's VM is gone: no marker can come
    beat(ctx, run.run_id, 0, 1, state="stopped")
    assert "worker 0: stopped" in vms_silent(ctx, run, now)
    beat(ctx, run.run_id, 0, 1)
    beat(ctx, run.run_id, 1, 1)
    assert vms_silent(ctx, run, now) is None


def test_a_vm_rebooting_for_its_gpu_driver_is_the_boot_rules_not_silent(local_config):
    """Stage 2 writes a 'rebooting' heartbeat and reboots once to load the NVIDIA driver:
    nothing heartbeats for minutes, and the boot timeout, not the heartbeat grace, owns it."""
    ctx = Context(local_config(timeouts={"heartbeat": "60s"}))
    run = request_run(ctx, parse_event({"idempotency_key": "reboot"})).run
    ctx.ledger.transition(run.run_id, RunState.APPLYING)
    run = ctx.ledger.transition(run.run_id, RunState.RUNNING)
    beat(ctx, run.run_id, 0, 600, state="rebooting")
    assert vms_silent(ctx, run, now_utc()) is None
    for state in ("booting", "running"):  # a VM that stopped beating after its reboot is gone
        beat(ctx, run.run_id, 0, 600, state=state)
        assert "worker 0: silent" in vms_silent(ctx, run, now_utc()), state
