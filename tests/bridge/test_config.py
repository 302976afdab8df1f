"""Config discovery and validation: Lithops' places and sections, clear errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

import lithops_bridge
from lithops_bridge.config import default_config, extract_storage_config, load_yaml_config
from lithops_bridge.errors import ConfigError
from lithops_bridge.storage.utils import CloudObject, StorageNoSuchKeyError  # noqa: F401 - the Lithops paths


def _storage_root(fexec) -> Path:
    return fexec.storage.ephemera_storage.root


def test_no_config_means_localhost_compute_and_storage_under_ephemera_home():
    with lithops_bridge.FunctionExecutor() as fexec:
        assert fexec.backend == "localhost" and fexec.mode == "localhost"
        assert fexec.storage.backend == "localhost" and fexec.storage.bucket == "lithops-bridge"
        assert _storage_root(fexec) == Path(os.environ["EPHEMERA_HOME"]).resolve() / "storage"
        assert fexec.call_async(abs, -3).result() == 3


def _cfg(root: str, bucket: str = "from-file", workers: int = 1) -> dict:
    return {
        "lithops": {"backend": "localhost", "storage": "localhost", "execution_timeout": 77},
        "localhost": {"storage_bucket": bucket, "storage_root": root, "worker_processes": workers},
    }


@pytest.mark.parametrize("where", ["env_json", "env_file", "cwd_file", "home_file", "dict", "config_file"])
def test_config_sources(tmp_path, monkeypatch, where):
    cfg = _cfg(str(tmp_path / "st"), bucket=f"bucket-{where.replace('_', '-')}")
    kwargs: dict = {}
    if where == "env_json":
        monkeypatch.setenv("LITHOPS_CONFIG", json.dumps(cfg))
    elif where == "env_file":
        (tmp_path / "lc.yaml").write_text(yaml.safe_dump(cfg))
        monkeypatch.setenv("LITHOPS_CONFIG_FILE", str(tmp_path / "lc.yaml"))
    elif where == "cwd_file":
        Path(".lithops_config").write_text(yaml.safe_dump(cfg))
    elif where == "home_file":
        home = Path(os.environ["HOME"]) / ".lithops"
        home.mkdir(parents=True)
        (home / "config").write_text(yaml.safe_dump(cfg))
    elif where == "dict":
        kwargs["config"] = cfg
    else:
        (tmp_path / "explicit.yaml").write_text(yaml.safe_dump(cfg))
        kwargs["config_file"] = str(tmp_path / "explicit.yaml")
    with lithops_bridge.FunctionExecutor(**kwargs) as fexec:
        assert fexec.storage.bucket == cfg["localhost"]["storage_bucket"]
        assert fexec.config["lithops"]["execution_timeout"] == 77
        assert fexec.call_async(abs, -1).result() == 1


def test_caller_dict_is_not_mutated_and_kwargs_override_backend(tmp_path):
    cfg = _cfg(str(tmp_path / "st"))
    before = json.dumps(cfg, sort_keys=True)
    with lithops_bridge.FunctionExecutor(config=cfg, worker_processes=3, log_level="WARNING") as fexec:
        assert fexec.config["localhost"]["worker_processes"] == 3
        assert fexec.compute_handler.workers == 3
    assert json.dumps(cfg, sort_keys=True) == before


def test_helpers_at_lithops_paths(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lithops:\n  backend: localhost\n")
    assert load_yaml_config(str(path)) == {"lithops": {"backend": "localhost"}}
    assert load_yaml_config(str(tmp_path / "missing.yaml")) == {}
    full = default_config(
        config_data={
            "lithops": {"storage": "aws_s3"},
            "aws": {"region": "eu-west-1", "access_key_id": "k", "secret_access_key": "s"},
            "aws_s3": {"storage_bucket": "b1"},
        }
    )
    sc = extract_storage_config(full)
    assert sc["backend"] == "aws_s3" and sc["aws_s3"]["storage_bucket"] == "b1" and sc["aws_s3"]["region"] == "eu-west-1"
    assert str(CloudObject("localhost", "b", "k")) == "<CloudObject at localhost://b/k>"


@pytest.mark.parametrize(
    "cfg, field",
    [
        ({"lithops": {"backend": "nimbus"}}, "lithops.backend"),
        ({"lithops": {"backend": "aws_lambda"}}, "lithops.backend"),
        ({"lithops": {"mode": "cloudy"}}, "lithops.mode"),
        ({"lithops": {"storage": "gcp_storage"}}, "lithops.storage"),
        ({"lithops": {"storage": "aws_s3"}, "aws_s3": {"region": "us-east-1"}}, "aws_s3.storage_bucket"),
        ({"lithops": {"storage": "ibm_cos"}, "ibm_cos": {"storage_bucket": "b", "region": "us-east"}}, "ibm_cos.api_key"),
        (
            {"lithops": {"storage": "ibm_cos"}, "ibm_cos": {"storage_bucket": "b", "access_key_id": "x", "region": "us-east"}},
            "ibm_cos.secret_access_key",
        ),
        ({"lithops": {"backend": "ibm_vpc"}, "standalone": {"exec_mode": "consume"}}, "standalone.run_id"),
        ({"lithops": {"backend": "ibm_vpc"}, "standalone": {"exec_mode": "create", "run_id": "r"}}, "standalone.exec_mode"),
        ({"lithops": {"backend": "standalone"}, "standalone": {"run_id": "r", "retries": -1}}, "standalone.retries"),
        ({"lithops": {"backend": "standalone"}, "standalone": {"run_id": "r", "retries": "2"}}, "standalone.retries"),
        ({"lithops": {"backend": "standalone"}, "standalone": {"run_id": "r"}}, "standalone.run_key"),
        ({"lithops": {"backend": "standalone"}, "standalone": {"run_id": "r", "run_key": "ab" * 31}}, "standalone.run_key"),
        ({"lithops": {"backend": "localhost"}, "localhost": {"worker_processes": 0}}, "localhost.worker_processes"),
    ],
)
def test_bad_config_names_the_key(cfg, field):
    with pytest.raises(ConfigError) as info:
        lithops_bridge.FunctionExecutor(config=cfg)
    assert info.value.field == field
    assert field in str(info.value)


def test_bad_env_json_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("LITHOPS_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="LITHOPS_CONFIG"):
        lithops_bridge.FunctionExecutor()


def test_standalone_mode_resolution(vms):
    cfg = {
        "lithops": {"mode": "standalone", "storage": "localhost"},
        "standalone": {"run_id": vms.run_id, "run_key": vms.run_key, "worker_processes": 1},
        "localhost": {"storage_bucket": vms.bucket, "storage_root": str(vms.root / "storage")},
    }
    with lithops_bridge.FunctionExecutor(config=cfg) as fexec:
        assert fexec.mode == "standalone" and fexec.backend == "standalone"
        assert fexec.config["standalone"]["exec_mode"] == "consume"
        assert fexec.call_async(abs, -5).result() == 5
