"""Deploy: functions-create.sh / `ephemera deploy openwhisk`, `ephemera deploy code-engine`,
the OpenWhisk action zip and the Code Engine job entry point."""

from __future__ import annotations

import io
import json
import os
import shlex
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from ephemera.cli import deploy as cli
from ephemera.actions.job import run as run_job
from ephemera.deploy.package import build_openwhisk_zip
from ephemera.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SECRET_VALUES = ("HMACID-4c1d-secret-id", "HMACSECRET-9f8e-secret", "APIKEY-7Hq2-secret")
def _example() -> dict:
    """examples/ibm-cloud.yaml, with test values in place of its REPLACE placeholders."""
    example = yaml.safe_load((REPO / "examples" / "ibm-cloud.yaml").read_text())
    example["ibm_cos"].update(access_key_id=SECRET_VALUES[0], secret_access_key=SECRET_VALUES[1])
    example["ibm"]["iam_api_key"] = SECRET_VALUES[2]
    return example


EXAMPLE = _example()


@pytest.fixture
def example(tmp_path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(EXAMPLE))
    return path


def _commands(text: str) -> list[list[str]]:
    """Every command of a printed plan, split; conditions and comments dropped."""
    cmds = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removesuffix("\\").strip().removesuffix("&&").removesuffix("||").removesuffix(";").strip()
        line = line.replace(">/dev/null 2>&1", "").strip()
        cmds.append(shlex.split(line))
    return cmds


def _dry(target: str, example: Path, tmp_path: Path, *extra: str) -> str:
    out = io.StringIO()
    assert cli.main([target, "--dry-run", "--config", str(example), "--build-dir", str(tmp_path / "build"), *extra], out=out) == 0
    return out.getvalue()


def test_openwhisk_dry_run_prints_every_command(example, tmp_path):
    text = _dry("openwhisk", example, tmp_path)
    cmds = _commands(text)
    zip_path = str((tmp_path / "build" / "ephemera-action.zip").resolve())
    assert cmds[0][:4] == ["ibmcloud", "fn", "package", "update"] and cmds[0][4:6] == ["ephemera", "--param-file"]
    for action in ("apply", "destroy", "reap", "status"):
        assert ["ibmcloud", "fn", "action", "update", f"ephemera/{action}", zip_path, "--kind", "python:3.11",
                "--main", "main", "--timeout", "300000", "--memory", "512"] in cmds
    creates = {c[4]: c for c in cmds if c[2:4] == ["trigger", "create"]}
    assert set(creates) == {"nightly", "done-1", "done-2", "ephemera-reaper"}
    nightly = creates["nightly"]
    assert nightly[nightly.index("--feed") + 1] == "/whisk.system/alarms/alarm"
    assert ["--param", "cron", "0 2 * * *"] == nightly[nightly.index("cron") - 1: nightly.index("cron") + 2]
    payload = json.loads(nightly[nightly.index("trigger_payload") + 1])
    assert payload == {"ephemera_kind": "alarm", "ephemera_trigger": "nightly", "workers": 2}
    done1 = " ".join(creates["done-1"])
    assert "--feed /whisk.system/cos/changes" in done1 and "--param prefix outputs/" in done1 and "--param suffix _SUCCESS.json" in done1
    assert "--param suffix _FAILURE.json" in " ".join(creates["done-2"])
    assert ["ibmcloud", "fn", "trigger", "delete", "nightly"] in cmds  # feed triggers are re-created
    rules = [c[4:] for c in cmds if c[2:4] == ["rule", "update"]]
    assert rules == [["nightly-apply", "nightly", "ephemera/apply"], ["done-destroy-1", "done-1", "ephemera/destroy"],
                     ["done-destroy-2", "done-2", "ephemera/destroy"], ["ephemera-reaper-reap", "ephemera-reaper", "ephemera/reap"]]
    for secret in SECRET_VALUES:
        assert secret not in text


def test_cos_feed_watches_the_configured_cos_endpoint_or_refuses_other_storage(tmp_path):
    """IBM's /whisk.system/cos/changes feed takes the COS endpoint (host only) to watch; it
    watches IBM COS buckets only, so another storage backend cannot back an object_write trigger."""
    from ephemera.config import load_config
    from ephemera.deploy.openwhisk import openwhisk_plan

    def plan(cfg):
        return openwhisk_plan(load_config(cfg), zip_path="a.zip", param_file="p.json")

    custom = {**EXAMPLE, "ibm_cos": {**EXAMPLE["ibm_cos"], "endpoint": "https://s3.direct.eu-de.cloud-object-storage.appdomain.cloud/"}}
    feeds = [s.create for s in plan(custom) if "/whisk.system/cos/changes" in s.create]
    assert feeds and all(c[c.index("endpoint") + 1] == "s3.direct.eu-de.cloud-object-storage.appdomain.cloud" for c in feeds)
    derived = [s.create for s in plan(EXAMPLE) if "/whisk.system/cos/changes" in s.create]
    assert derived[0][derived[0].index("endpoint") + 1] == "s3.private.us-south.cloud-object-storage.appdomain.cloud"
    local = {**EXAMPLE, "storage": {"backend": "localhost", "bucket": "ephemera-state"}, "home": str(tmp_path)}
    with pytest.raises(ConfigError) as info:
        plan(local)
    assert info.value.field == "triggers[1]" and "localhost" in str(info.value)


def test_functions_create_sh_dry_run(example, tmp_path):
    done = subprocess.run([str(REPO / "functions-create.sh"), "--dry-run", "--config", str(example), "--cli", "wsk",
                           "--build-dir", str(tmp_path / "build")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "EPHEMERA_PYTHON": sys.executable})
    assert done.returncode == 0, done.stderr
    cmds = _commands(done.stdout)
    assert cmds[0][:3] == ["wsk", "package", "update"]
    assert sum(1 for c in cmds if c[1:3] == ["action", "update"]) == 4
    assert sum(1 for c in cmds if c[1:3] == ["rule", "update"]) == 4
    for secret in SECRET_VALUES:
        assert secret not in done.stdout + done.stderr


def test_code_engine_dry_run_prints_every_command(example, tmp_path):
    text = _dry("code-engine", example, tmp_path)
    cmds = _commands(text)
    assert cmds[0] == ["ibmcloud", "ce", "project", "select", "--name", "ephemera"]
    secret_create = next(c for c in cmds if c[2:4] == ["secret", "create"])
    assert secret_create[4:7] == ["--name", "ephemera-config", "--from-env-file"]
    fns = {c[5]: c for c in cmds if c[2:4] == ["fn", "create"]}
    assert set(fns) == {"ephemera-apply", "ephemera-reap", "ephemera-status"}
    assert "--runtime" in fns["ephemera-apply"] and "python-3.11" in fns["ephemera-apply"]
    assert "--env-from-secret" in fns["ephemera-apply"]
    jobs = [c for c in cmds if c[2:4] == ["job", "create"]]
    assert [j[5] for j in jobs] == ["ephemera-destroy"]
    crons = {c[6]: c for c in cmds if c[2:5] == ["sub", "cron", "create"]}
    assert set(crons) == {"nightly-apply", "ephemera-reaper-reap"}
    nightly = " ".join(crons["nightly-apply"])
    assert "--destination ephemera-apply --destination-type function" in nightly and "--time-zone Europe/Madrid" in nightly
    assert "--schedule 0 2 * * *" in nightly
    cos = {c[6]: " ".join(c) for c in cmds if c[2:5] == ["sub", "cos", "create"]}
    assert set(cos) == {"done-destroy-1", "done-destroy-2"}
    assert "--destination ephemera-destroy --destination-type job --bucket ephemera-state --event-type write --prefix outputs/ --suffix _SUCCESS.json" in cos["done-destroy-1"]
    assert "--suffix _FAILURE.json" in cos["done-destroy-2"]
    for secret in SECRET_VALUES:
        assert secret not in text


class Recorder:
    """A fake CLI: records commands; ``get`` succeeds for the names in ``existing``."""

    def __init__(self, existing=(), on_run=None):
        self.commands: list[list[str]] = []
        self.existing = set(existing)
        self.on_run = on_run

    def __call__(self, cmd: list[str]) -> int:
        self.commands.append(cmd)
        if self.on_run:
            self.on_run(cmd)
        if "get" in cmd:
            return 0 if any(name in cmd for name in self.existing) else 1
        return 0


def test_openwhisk_run_binds_config_through_a_private_param_file(example, tmp_path):
    seen = {}

    def inspect(cmd):
        if "--param-file" in cmd:
            path = cmd[cmd.index("--param-file") + 1]
            seen["mode"] = stat.S_IMODE(os.stat(path).st_mode)
            seen["params"] = json.loads(Path(path).read_text())
            seen["path"] = path

    runner = Recorder(existing={"nightly"}, on_run=inspect)
    out = io.StringIO()
    code = cli.main(["openwhisk", "--no-deps", "--config", str(example), "--build-dir", str(tmp_path / "build")], out=out, runner=runner)
    assert code == 0, out.getvalue()
    assert seen["mode"] == 0o600
    assert seen["params"]["config"]["ibm_cos"]["secret_access_key"] == SECRET_VALUES[1]  # the real value, in the file only
    assert not Path(seen["path"]).exists()  # removed afterwards
    names = [c[2:5] for c in runner.commands if c[2] == "trigger"]
    assert ["trigger", "delete", "nightly"] in names  # existed: re-created
    assert ["trigger", "delete", "done-1"] not in names  # did not exist: created only
    for secret in SECRET_VALUES:
        assert all(secret not in " ".join(c) for c in runner.commands)
        assert secret not in out.getvalue()
    with zipfile.ZipFile(tmp_path / "build" / "ephemera-action.zip") as zf:
        names = set(zf.namelist())
    assert {"__main__.py", "virtualenv/bin/activate_this.py", "ephemera/actions/apply.py", "ephemera/config/__init__.py",
            "ephemera/triggers/cloud_events.py", "lithops_bridge/executor.py"} <= names


def test_code_engine_run_uses_an_env_file_secret(example, tmp_path):
    seen = {}

    def inspect(cmd):
        if "--from-env-file" in cmd:
            path = cmd[cmd.index("--from-env-file") + 1]
            seen["mode"] = stat.S_IMODE(os.stat(path).st_mode)
            seen["text"] = Path(path).read_text()

    runner = Recorder(existing={"ephemera-apply"}, on_run=inspect)
    code = cli.main(["code-engine", "--config", str(example), "--build-dir", str(tmp_path / "build")], out=io.StringIO(), runner=runner)
    assert code == 0
    assert seen["mode"] == 0o600
    name, _, value = seen["text"].strip().partition("=")
    assert name == "EPHEMERA_CONFIG_JSON" and json.loads(value)["ibm"]["iam_api_key"] == SECRET_VALUES[2]
    verbs = [(c[2], c[3], c[5]) for c in runner.commands if c[2] == "fn" and c[3] in ("create", "update")]
    assert ("fn", "update", "ephemera-apply") in verbs and ("fn", "create", "ephemera-reap") in verbs
    bundle = tmp_path / "build" / "code-engine"
    assert (bundle / "__main__.py").is_file() and (bundle / "requirements.txt").is_file() and (bundle / "Dockerfile").is_file()
    assert "ephemera.actions.job" in (bundle / "Dockerfile").read_text()
    for secret in SECRET_VALUES:
        assert all(secret not in " ".join(c) for c in runner.commands)


def test_action_zip_entry_point_runs_an_action(tmp_path):
    zip_path = build_openwhisk_zip(tmp_path / "action.zip", requirements=())
    root = tmp_path / "unzipped"
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(root)
    config = {"storage": {"backend": "localhost", "bucket": "ephemera-state"}, "localhost": {"root": str(tmp_path / "b")}, "home": str(tmp_path / "h")}
    script = f"""
import json, runpy, sys
sys.path.insert(0, {str(root)!r})
exec(open({str(root / 'virtualenv/bin/activate_this.py')!r}).read(), {{"__file__": {str(root / 'virtualenv/bin/activate_this.py')!r}}})
entry = runpy.run_path({str(root / '__main__.py')!r})
print(json.dumps([entry["main"]({{"ephemera_action": "nope"}}), entry["main"]({{"config": {config!r}}})]))
import ephemera.actions
print(ephemera.actions.__file__)
"""
    env = {**os.environ, "__OW_ACTION_NAME": "/ns/ephemera/status", "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    unknown, status = json.loads(lines[-2])
    assert unknown["error"]["code"] == "PARAM_INVALID" and "apply, destroy, reap, status" in unknown["error"]["message"]
    assert "error" not in status and status.get("runs") == []
    assert lines[-1].startswith(str(root))  # the zip's own copy of the actions ran


def test_code_engine_job_runs_destroy_for_ce_data(tmp_path):
    config = {"storage": {"backend": "localhost", "bucket": "ephemera-state"}, "localhost": {"root": str(tmp_path / "b")}, "home": str(tmp_path / "h")}
    body = {"bucket": "ephemera-state", "endpoint": "", "key": "uploads/data.csv", "operation": "Object:Write",
            "notification": {"bucket_name": "ephemera-state", "object_name": "uploads/data.csv", "object_length": "3"}}
    code, result = run_job({"CE_DATA": json.dumps(body), "CE_TYPE": "com.ibm.cloud.cos.document.write", "EPHEMERA_CONFIG_JSON": json.dumps(config)})
    assert code == 0 and result.get("ignored") is True and result["reason_code"] == "NOT_A_MARKER"
    code, result = run_job({"CE_DATA": "not json"})
    assert code == 2 and "CE_DATA" in result["error"]["message"]


def test_code_engine_job_takes_the_key_from_ce_subject(tmp_path):
    config = {"storage": {"backend": "localhost", "bucket": "ephemera-state"}, "localhost": {"root": str(tmp_path / "b")}, "home": str(tmp_path / "h")}
    body = {"bucket": "ephemera-state", "operation": "Object:Write", "notification": {"bucket_name": "ephemera-state", "event_type": "Object:Write"}}
    code, result = run_job({"CE_DATA": json.dumps(body), "CE_TYPE": "com.ibm.cloud.cos.document.write",
                            "CE_SUBJECT": "uploads/data.csv", "EPHEMERA_CONFIG_JSON": json.dumps(config)})
    assert code == 0, result
    assert result["ignored"] is True and result["key"] == "uploads/data.csv"
