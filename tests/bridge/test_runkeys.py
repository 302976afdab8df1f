"""Run keys (ephemera.runkeys): one signing key per controller, one derived key per run,
the same wherever the controller runs (this machine, a deployed action), never in the
bucket; ``ephemera lithops-config`` hands a run's key to a laptop, masked on screen."""

from __future__ import annotations

import multiprocessing
import os
import stat

import pytest
import yaml

from ephemera import runkeys
from ephemera.cli.lithops_config import main as lithops_config
from ephemera.assembly import load_config, with_signing_key
from ephemera.config import REDACTED
from ephemera.model.ledger import Ledger
from ephemera.model.runs import RunRecord
from ephemera.assembly import get_storage


@pytest.fixture(autouse=True)
def configured_home(monkeypatch):
    """The config's ``home`` decides (EPHEMERA_HOME would override it)."""
    monkeypatch.delenv("EPHEMERA_HOME", raising=False)


def _config(tmp_path, **extra):
    return load_config(
        {
            "home": str(tmp_path / "home"),
            "storage": {"backend": "localhost", "bucket": "state-bucket"},
            "localhost": {"root": str(tmp_path / "storage")},
            **extra,
        }
    )


def test_the_home_key_is_created_once_owner_only_and_runs_get_distinct_keys(tmp_path):
    config = _config(tmp_path)
    first = runkeys.run_key(config, "ws-a")
    path = config.home / runkeys.SIGNING_KEY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert runkeys.run_key(config, "ws-a") == first and len(first) == 64
    assert runkeys.run_key(config, "ws-b") != first
    assert runkeys.run_key(_config(tmp_path / "elsewhere"), "ws-a") != first  # another controller, another key
    assert first not in path.read_text()


def _derive(home: str, queue) -> None:
    os.environ["EPHEMERA_HOME"] = home
    queue.put(runkeys.run_key(load_config({"home": home}), "ws-race"))


@pytest.mark.slow  # spawns fresh interpreters
def test_processes_racing_to_create_the_home_key_agree(tmp_path):
    home = str(tmp_path / "home")
    os.makedirs(home)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_derive, args=(home, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    keys = {queue.get(timeout=60) for _ in procs}
    for p in procs:
        p.join(30)
    assert len(keys) == 1
    assert sorted(os.listdir(home)) == [runkeys.SIGNING_KEY_FILE]  # no temporary file left


def test_a_configured_signing_key_wins_and_a_deploy_binds_the_home_one(tmp_path):
    configured = _config(tmp_path, security={"signing_key": "k" * 40})
    assert runkeys.run_key(configured, "ws-a") == runkeys.derive("k" * 40, "ws-a")
    assert not (configured.home / runkeys.SIGNING_KEY_FILE).exists()
    local = _config(tmp_path)
    deployed = with_signing_key(local)  # what a deploy binds: a deployed action has no home file
    assert deployed.security.signing_key == (local.home / runkeys.SIGNING_KEY_FILE).read_text().strip()
    assert runkeys.run_key(deployed, "ws-a") == runkeys.run_key(local, "ws-a")
    assert deployed.security.signing_key in deployed.secret_values()
    assert deployed.to_dict()["security"]["signing_key"] == REDACTED


def test_bound_config_carries_the_signing_key(tmp_path):
    from ephemera.bundle.store import bound_config

    local = _config(tmp_path)
    bound = bound_config(local, "0" * 64, [])
    assert runkeys.run_key(bound, "ws-x") == runkeys.run_key(local, "ws-x")


def test_lithops_config_carries_the_run_key_masked_on_screen(tmp_path, capsys):
    config = _config(tmp_path)
    storage = get_storage(config)
    storage.create_bucket("state-bucket")
    agents = [{"worker": 0, "pid": 1, "pid_file": "/x/0.pid", "log_file": "/x/0.log"}]
    Ledger(storage, "state-bucket").create(
        RunRecord(run_id="ws-run", workspace="ws", engine="terraform", outputs={"agents": agents})
    )
    raw = config.to_dict(redact=False)
    out = tmp_path / "lithops.yaml"
    assert lithops_config(raw, "ws-run", str(out)) == 0
    written = yaml.safe_load(out.read_text())
    key = runkeys.run_key(config, "ws-run")
    assert written["standalone"]["run_id"] == "ws-run" and written["standalone"]["run_key"] == key
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    capsys.readouterr()
    assert lithops_config(raw, "ws-run", None) == 0
    printed = capsys.readouterr().out
    assert key not in printed and "run_key: '********'" in printed
