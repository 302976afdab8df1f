"""The demo's flow end to end: alarm -> apply -> workload on local VMs -> marker ->
bucket-write rule -> destroy, through `ephemera up`'s runtime, on localhost storage
and on S3 (a local S3 endpoint)."""

from __future__ import annotations

import json
import threading

import pytest

from ephemera.cli.demo import demo_config
from ephemera.context import Context
from ephemera.vm.heartbeats import read_heartbeats
from ephemera.model.runs import RunState
from ephemera.runtime.activations import list_activations
from ephemera.runtime.runtime import run_up
from ephemera.vm.pids import is_agent_process
from tests.helpers import heartbeat_pids

# the whole flow: runtime, applies, agents; pytest's budget is above run_flow's (a loaded 2-core machine)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ORDER = ["REQUESTED", "APPLYING", "RUNNING", "SUCCEEDED", "DESTROYING", "DESTROYED"]


def run_flow(raw: dict, timeout: float = 600.0) -> Context:
    """Run ``ephemera up`` until every run is DESTROYED (``timeout``: only a safety net)."""
    ctx = Context(raw)
    stop = threading.Event()
    timer = threading.Timer(timeout, stop.set)
    timer.start()
    agent_pids: set[int] = set()

    def until() -> bool:
        # remember every agent pid seen while the run lives, to check none survives
        agent_pids.update(heartbeat_pids(ctx))
        runs = list(ctx.ledger.list())
        return bool(runs) and all(r.state == RunState.DESTROYED for r in runs)

    try:
        run_up(ctx.config, stop=stop, until=until, catch_up="latest")  # as the demo: its alarm may pass before start
    finally:
        timer.cancel()
    ctx.agent_pids = agent_pids  # type: ignore[attr-defined]
    return ctx


def assert_successful_run(ctx: Context, folds: int = 5):
    runs = list(ctx.ledger.list())
    assert len(runs) == 1, [r.run_id for r in runs]
    run = runs[0]
    assert [t.state for t in run.transitions] == ORDER
    assert [t.at for t in run.transitions] == sorted(t.at for t in run.transitions)
    assert run.event["kind"] == "alarm" and run.event["trigger"] == "demo-alarm"
    metrics = json.loads(ctx.storage.get(run.job.output_bucket, run.job.output_prefix + "metrics.json"))
    assert len(metrics["folds"]) == folds and metrics["n_samples"] == 1797
    assert all(0.9 < f["accuracy"] <= 1.0 for f in metrics["folds"])
    assert metrics["mean_accuracy"] == pytest.approx(sum(f["accuracy"] for f in metrics["folds"]) / folds, abs=1e-4)
    assert ctx.storage.head(run.job.output_bucket, run.job.output_prefix + "model.pkl").size > 1000
    assert ctx.agent_pids, "no heartbeat was seen"
    assert not [pid for pid in ctx.agent_pids if is_agent_process(pid)], "agent processes survived destroy"
    acts = list_activations(ctx.storage, ctx.config.state_bucket, 10)
    assert sorted(a.action for a in acts if a.action != "reap") == ["apply", "destroy"]
    assert all(a.ok for a in acts), [a.result for a in acts if not a.ok]
    return run


def test_demo_flow_on_localhost_storage(demo_run):
    """The shared demo run (tests/e2e/conftest.py: two local VMs on localhost storage)."""
    assert demo_run.code == 0, demo_run.out
    ctx = Context(str(demo_run.home / "config.yaml"))
    ctx.agent_pids = demo_run.agent_pids  # type: ignore[attr-defined]
    run = assert_successful_run(ctx)
    assert (
        len(run.outputs["agents"]) == 2
        and len({b.worker for b in read_heartbeats(ctx.storage, ctx.config.state_bucket, run.run_id)}) == 2
    )


def test_demo_flow_on_s3(home, s3_endpoint):
    raw = demo_config(home, fire_in=1.5)
    raw["storage"] = {"backend": "aws_s3", "bucket": "ephemera-e2e"}
    raw["aws_s3"] = {
        "endpoint": s3_endpoint,
        "region": "us-east-1",
        "access_key_id": "testing",
        "secret_access_key": "testing-secret",
    }
    Context(raw).storage.create_bucket("ephemera-e2e")
    # the alarm counts from here: the first S3 client (boto3's import) may take longer than the
    # alarm's lead plus the scheduler's 5 s grace on a loaded machine, and an alarm that old at
    # the runtime's first start never fires
    raw["triggers"] = demo_config(home, fire_in=1.5)["triggers"]
    ctx = run_flow(raw)
    run = assert_successful_run(ctx)
    assert ctx.storage.backend == "aws_s3" and run.job.output_bucket == "ephemera-e2e"


def test_demo_command_exits_zero_and_reports(demo_run, capsys):
    """`make demo`'s command (the shared run): exit code 0 and its report, then `ephemera logs`."""
    assert demo_run.code == 0, demo_run.out
    out = demo_run.out
    for state in ORDER:
        assert state in out
    assert "metrics.json" in out and "model.pkl" in out and "agent processes left running: 0" in out
    check_logs_after_the_vms_are_gone(demo_run.home, capsys)


def check_logs_after_the_vms_are_gone(demo_home, capsys):
    """`ephemera logs RUN` after `make demo`: the agent's and the workload's lines, with
    their times, read from the state bucket though the local VM is gone."""
    import re

    from ephemera.cli import main

    config = str(demo_home / "config.yaml")
    run = next(iter(Context(config).ledger.list()))
    assert not [p for p in heartbeat_pids(Context(config)) if is_agent_process(p)]
    assert main(["--config", config, "logs", run.run_id]) == 0
    default = capsys.readouterr().out.splitlines()
    stamp = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}  "
    assert any(re.match(stamp + r"vm0 workload ", line) for line in default)
    assert not any(re.match(stamp + r"(engine|action|vm0 boot) ", line) for line in default)
    assert "--all" in default[-1]  # the engine, boot and action lines are one flag away
    assert main(["--config", config, "logs", run.run_id, "--all"]) == 0
    out = capsys.readouterr().out.splitlines()
    stamp = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}  "
    agent = [line for line in out if re.match(stamp + r"vm0 agent ", line)]
    workload = [line for line in out if re.match(stamp + r"vm0 workload ", line)]
    assert any("agent for run" in line and "up" in line for line in agent), out
    assert any("stopped" in line for line in agent), "the agent's last lines, shipped at exit, are missing"
    assert any("digits CV: mean accuracy" in line for line in workload), out
    assert any(re.match(stamp + "engine ", line) for line in out) and any(re.match(stamp + "action ", line) for line in out)
    assert any(re.match(stamp + r"vm0 boot ", line) for line in out)
    assert main(["--config", config, "runs"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert "COST" in listing[0].split() and "0.0000 USD" in listing[1]  # a local run: zero, with its VM-seconds in `runs show`
