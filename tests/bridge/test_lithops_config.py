"""``ephemera lithops-config RUN_ID``: real-Lithops configs from a run's Terraform outputs."""

from __future__ import annotations

import os
import stat

import yaml

from ephemera.cli.lithops_config import main
from ephemera.assembly import load_config
from ephemera.model.ledger import Ledger
from ephemera.model.runs import RunRecord
from ephemera.assembly import get_storage
from ephemera.storage.lithops import from_lithops as to_ephemera
from ephemera.storage.lithops import to_lithops as from_ephemera

API_KEY = "iam-apikey-bridge-test-9f8e7d6c"
COS_SECRET = "cos-secret-bridge-test-1a2b3c4d5e"


def _config(tmp_path, **extra) -> dict:
    return {
        "home": str(tmp_path / "home"),
        "storage": {"backend": "localhost", "bucket": "state-bucket"},
        "localhost": {"root": str(tmp_path / "storage")},
        **extra,
    }


def _record(cfg: dict, run_id: str, outputs: dict) -> None:
    config = load_config(cfg)
    storage = get_storage(config)
    storage.create_bucket(config.state_bucket)
    Ledger(storage, config.state_bucket).create(RunRecord(run_id=run_id, workspace="ws", engine="terraform", outputs=outputs))


def test_local_stack_agents_give_one_vm_config_each(tmp_path, capsys):
    cfg = _config(tmp_path)
    agents = [{"worker": w, "pid": 100 + w, "pid_file": f"/x/{w}.pid", "log_file": f"/x/{w}.log"} for w in (1, 0)]
    _record(cfg, "run-local", {"agents": agents, "instance_ids": ["a", "b"]})
    out = tmp_path / "out" / "lithops.yaml"
    assert main(cfg, "run-local", str(out)) == 0
    files = sorted((tmp_path / "out").iterdir())
    assert [f.name for f in files] == ["lithops-vm0.yaml", "lithops-vm1.yaml"]
    for f in files:
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
        data = yaml.safe_load(f.read_text())
        assert data["lithops"] == {"mode": "standalone", "storage": "localhost", "backend": "vm"}
        assert data["standalone"]["exec_mode"] == "consume"
        assert data["vm"]["ip_address"] == "127.0.0.1" and data["vm"]["ssh_username"]
        assert data["localhost"]["storage_bucket"] == "state-bucket"
    assert "lithops-vm0.yaml" in capsys.readouterr().out


def test_ibm_stack_outputs_with_cos_storage(tmp_path, capsys):
    cfg = _config(tmp_path, ibm={"iam_api_key": API_KEY}, workspace={"stack": "ibm-vpc-gpu", "variables": {"region": "us-east"}})
    _record(cfg, "run-ibm", {"instance_ids": ["0757_a"], "private_ips": ["10.0.0.5"], "floating_ips": []})
    cos_cfg = {
        **cfg,
        "storage": {"backend": "ibm_cos", "bucket": "state-bucket"},
        "ibm_cos": {"region": "us-east", "access_key_id": "hmac-id", "secret_access_key": COS_SECRET},
    }
    # the record lives in localhost storage above: read it through the same storage
    out = tmp_path / "ibm.yaml"
    assert main(cfg, "run-ibm", str(out)) == 0
    data = yaml.safe_load(out.read_text())
    assert data["lithops"]["backend"] == "ibm_vpc"
    assert data["ibm_vpc"] == {
        "instance_id": "0757_a",
        "floating_ip": "10.0.0.5",
        "region": "us-east",
        "iam_api_key": API_KEY,
        "ssh_username": "root",
    }
    storage = from_ephemera(load_config(cos_cfg))
    section = storage["ibm_cos"]
    assert storage["backend"] == "ibm_cos" and section["storage_bucket"] == "state-bucket"
    assert section["secret_access_key"] == COS_SECRET and "api_key" not in section  # HMAC wins, as in Ephemera
    capsys.readouterr()
    assert main(cfg, "run-ibm", None) == 0  # stdout: secrets masked
    printed = capsys.readouterr().out
    assert "instance_id: 0757_a" in printed and API_KEY not in printed and "********" in printed


def test_unknown_run_and_run_without_vms(tmp_path, capsys):
    cfg = _config(tmp_path)
    _record(cfg, "run-empty", {})
    assert main(cfg, "no-such-run", None) == 2
    assert "no run 'no-such-run'" in capsys.readouterr().err
    assert main(cfg, "run-empty", None) == 3
    assert "no VMs" in capsys.readouterr().err


def test_a_variable_the_stack_does_not_take_is_refused_at_load(tmp_path):
    """The spec says what ``workspace.variables`` may hold: a typo, or a variable Ephemera
    or the engine sets, is a config error naming the key (before anything is applied)."""
    import pytest

    from ephemera.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, workspace={"variables": {"worker_cuont": 2}}))
    assert info.value.field == "workspace.variables.worker_cuont" and "worker_count" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, workspace={"variables": {"boot_dir": "/tmp/x"}}))
    assert info.value.field == "workspace.variables.boot_dir" and "set by the engine" in str(info.value)


def test_ibm_cos_with_iam_falls_back_to_the_ibm_api_key_and_builds_an_executor(tmp_path):
    import lithops_bridge

    cfg = _config(
        tmp_path,
        ibm={"iam_api_key": API_KEY},
        ibm_cos={"region": "eu-de", "endpoint_type": "direct", "service_instance_id": "crn:v1:cos:abc"},
    )
    cfg["storage"] = {"backend": "ibm_cos", "bucket": "state-bucket"}
    storage = from_ephemera(load_config(cfg))
    section = storage["ibm_cos"]
    assert section["api_key"] == API_KEY and section["service_instance_id"] == "crn:v1:cos:abc"
    assert section["endpoint"] == "https://s3.direct.eu-de.cloud-object-storage.appdomain.cloud"  # endpoint_type kept
    # what the agent hands a workload: a localhost-compute executor on this storage builds
    with lithops_bridge.FunctionExecutor(
        config={"lithops": {"backend": "localhost", "storage": "ibm_cos"}, "ibm_cos": section}
    ) as fexec:
        assert fexec.storage_config["ibm_cos"]["api_key"] == API_KEY
    # and the bridge maps it back onto an Ephemera config that validates to the same COS settings
    from ephemera.storage.ibm_cos.config import cos_settings

    back, bucket = to_ephemera(storage)
    assert bucket == "state-bucket"
    assert cos_settings(load_config(back)) == cos_settings(load_config(cfg))


def test_ibm_vpc_region_comes_from_the_stack_variables_else_the_engine(tmp_path):
    from ephemera.cli.lithops_config import vm_configs

    record = RunRecord(
        run_id="r", workspace="ws", engine="schematics", outputs={"instance_ids": ["i"], "private_ips": ["10.0.0.9"]}
    )
    schematics = _config(
        tmp_path,
        engine={"backend": "schematics"},
        ibm={"iam_api_key": API_KEY},
        workspace={"stack": "ibm-vpc-gpu"},
        schematics={"workspace_id": "eu-de.workspace.x.1", "region": "eu-de"},
    )
    assert vm_configs(load_config(schematics), record)[0][1]["ibm_vpc"]["region"] == "eu-de"
    pinned = {**schematics, "workspace": {"stack": "ibm-vpc-gpu", "variables": {"region": "eu-gb"}}}
    assert vm_configs(load_config(pinned), record)[0][1]["ibm_vpc"]["region"] == "eu-gb"
    local_engine = _config(
        tmp_path, ibm={"iam_api_key": API_KEY}, workspace={"stack": "ibm-vpc-gpu"}
    )  # its spec's default region
    assert vm_configs(load_config(local_engine), record)[0][1]["ibm_vpc"]["region"] == "us-south"


def test_a_destroyed_run_gets_no_config_and_an_ended_one_a_warning(tmp_path, capsys):
    """F26: `lithops-config` of a destroyed run printed a config without a word. Its VMs
    are gone: it now refuses, saying so and what to pick instead; a run whose workload
    has ended (its VMs about to go) gets its config with a warning on stderr."""
    from ephemera.model.runs import RunState

    cfg = _config(tmp_path)
    agents = [{"worker": 0, "pid": 100, "pid_file": "/x/0.pid", "log_file": "/x/0.log"}]
    _record(cfg, "run-gone", {"agents": agents})
    config = load_config(cfg)
    ledger = Ledger(get_storage(config), config.state_bucket)
    for state in (RunState.APPLYING, RunState.RUNNING, RunState.SUCCEEDED):
        ledger.transition("run-gone", state, "test")
    assert main(cfg, "run-gone", None) == 0
    printed = capsys.readouterr()
    assert "standalone" in printed.out and "warning" in printed.err and "SUCCEEDED" in printed.err
    for state in (RunState.DESTROYING, RunState.DESTROYED):
        ledger.transition("run-gone", state, "test")
    assert main(cfg, "run-gone", None) == 3
    printed = capsys.readouterr()
    assert printed.out == "" and "is DESTROYED" in printed.err and "ephemera runs --open" in printed.err
