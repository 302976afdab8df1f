"""Defect 1 of issue 11: a destroy by hand while the run is still APPLYING.

The apply is held between Terraform taking the workspace and writing its state (the
window in which the state holds no resource yet); a manual destroy in that window must
wait for the apply, then destroy what it made: never record DESTROYED ("no resource
left") while the apply may still create resources."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ephemera.actions import destroy
from ephemera.context import Context
from ephemera.engines.terraform.config import engine_config
from ephemera.engines.terraform.engine import TerraformEngine
from ephemera.engines.terraform.runners import make_runner
from ephemera.lifecycle import apply_run, request_run
from ephemera.model.runs import RunState
from ephemera.events.formats import parse_event
from tests.helpers import live_agents

pytestmark = pytest.mark.slow  # real applies

S = RunState


class HeldApply:
    """A runner whose ``apply`` waits for ``release`` before running (the real runner runs it)."""

    def __init__(self, inner):
        self.inner, self.name = inner, inner.name
        self.started, self.release = threading.Event(), threading.Event()

    def run(self, workdir: Path, command: str):
        if command == "apply":
            self.started.set()
            assert self.release.wait(60)
        return self.inner.run(workdir, command)


def test_destroy_by_hand_during_apply_waits_and_leaves_nothing(local_cfg, faults):
    config = local_cfg(workload={"params": {"sleep": 120}}, workspace={"variables": {"worker_count": 2}})
    plain = Context(config)
    runner = HeldApply(make_runner(engine_config(plain.config).binary))
    engine = TerraformEngine(plain.config, engine_config(plain.config), runner=runner)
    ctx = Context(config, engine=engine)
    run = request_run(ctx, parse_event({"idempotency_key": "during-apply"})).run
    applied = {}
    applier = threading.Thread(target=lambda: applied.setdefault("run", apply_run(ctx, run)))
    applier.start()
    assert runner.started.wait(60)
    faults.inject()  # a destroy arrives while the apply holds the workspace
    faults.scenario("destroy during apply")
    threading.Timer(2.0, runner.release.set).start()  # the apply goes on while the destroy is waiting
    result = destroy.main({"config": config, "run_id": run.run_id})
    applier.join(120)
    assert result["state"] == "DESTROYED", result
    record = ctx.ledger.get(run.run_id)
    assert record.state == S.DESTROYED
    assert engine.resources(run.workspace) == [], "the apply's resources outlived the DESTROYED record"
    assert not live_agents(Path(ctx.config.home))
    # the destroy's record follows the apply: it did not claim an empty workspace before the apply ended
    destroy_done = [a for a in record.activities if a.kind == "destroy"][-1]
    assert "nothing to destroy" not in destroy_done.log_tail
