"""The capacity ladder through the Schematics engine (the real SDK against the fake IAM and
Schematics, the ledger in IBM COS on a local S3 server): an apply job that fails with the
IBM VPC code ``cannot_start_capacity`` in its job log ("Can't start instance because
resource capacity is unavailable"; IBM's resolutions include "Select a different
availability zone") is destroyed and applied again on the next rung, found by the
status action's poll as a deployed controller would."""

from __future__ import annotations

import pytest

from ephemera.assembly import get_storage
from ephemera.model.ledger import Ledger
from tests.ladder import errors

actions_apply = pytest.importorskip("ephemera.actions.apply")
actions_status = pytest.importorskip("ephemera.actions.status")

ZONE_VARIABLES = {"worker_count": 1, "zone": "us-south-1", "profile": "gx3-16x80x1l4"}


@pytest.fixture
def ladder_cfg(cos_config) -> dict:
    workspace = {"name": "gpu", "stack": "ibm-vpc-gpu", "variables": ZONE_VARIABLES, "fallback": [{"zone": "us-south-2"}]}
    return {**cos_config, "workspace": workspace}


def _status(cfg: dict, run_id: str) -> dict:
    result = actions_status.main({"config": cfg, "run_id": run_id})
    assert "error" not in result, result
    return result["run"]


def _zones(schematics) -> list[str]:
    stores = [{v["name"]: v["value"] for v in call.body["variablestore"]} for call in schematics.calls("PUT", "/values")]
    return [store["zone"] for store in stores]


def test_a_job_log_with_an_ibm_capacity_code_moves_to_the_next_rung(ladder_cfg, schematics):
    schematics.apply_scripts = [["INPROGRESS", "FAILED"]]  # the first apply job fails, the next one completes
    schematics.failure_log = errors.IBM_NO_CAPACITY
    applied = actions_apply.main({"config": ladder_cfg, "ephemera_kind": "alarm", "ephemera_trigger": "nightly"})
    assert "error" not in applied and applied["state"] == "APPLYING", applied
    run_id = applied["run_id"]

    assert _status(ladder_cfg, run_id)["state"] == "APPLYING"  # the job is in progress
    assert _status(ladder_cfg, run_id)["state"] == "APPLYING"  # failed: destroyed, and rung 1's job started
    assert len(schematics.calls("PUT", "/destroy")) == 1 and len(schematics.calls("PUT", "/apply")) == 2
    assert _zones(schematics) == ["us-south-1", "us-south-2"]
    states = [_status(ladder_cfg, run_id)["state"] for _ in range(2)]
    assert states == ["APPLYING", "RUNNING"]

    run = Ledger(get_storage(ladder_cfg), ladder_cfg["storage"]["bucket"]).get(run_id)
    assert [t.state for t in run.transitions] == ["REQUESTED", "APPLYING", "REQUESTED", "APPLYING", "RUNNING"]
    assert run.transitions[2].reason.startswith("no capacity for zone=us-south-1 (code cannot_start_capacity:")
    assert run.transitions[2].reason.endswith("trying rung 1 (workspace.fallback[0]): zone=us-south-2")
    assert [(a["rung"], a["code"]) for a in run.ladder] == [(0, "cannot_start_capacity")]
    assert [a.kind for a in run.activities] == ["apply", "destroy", "apply"] and run.activities[0].state == "FAILED"
    assert "0717_inst-0001" in run.resources


def test_a_failed_job_without_a_capacity_code_is_not_retried(ladder_cfg, schematics):
    schematics.apply_scripts = [["INPROGRESS", "FAILED"]]
    schematics.failure_log = errors.IBM_BAD_IMAGE
    run_id = actions_apply.main({"config": ladder_cfg, "ephemera_kind": "alarm", "ephemera_trigger": "nightly"})["run_id"]
    states = [_status(ladder_cfg, run_id)["state"] for _ in range(2)]
    assert states == ["APPLYING", "APPLY_FAILED"]
    assert len(schematics.calls("PUT", "/apply")) == 1 and not schematics.calls("PUT", "/destroy")
    run = Ledger(get_storage(ladder_cfg), ladder_cfg["storage"]["bucket"]).get(run_id)
    assert run.ladder == [] and run.error.code == "APPLY_FAILED"
