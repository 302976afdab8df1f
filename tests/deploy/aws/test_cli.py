"""``ephemera deploy aws --dry-run --out DIR``: a complete plan written with every file its
commands read, the config's secrets only in the 0600 secret file, and -- against moto's
server with the ``aws`` CLI -- a plan that replays as printed, twice (it is idempotent).

The function zip is built without its third-party packages here (pip is not run): its
layout is checked; the dependencies are the ``pip install --target`` of
:mod:`ephemera.deploy.aws.package`."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml

from ephemera.cli import deploy as cli
from ephemera.deploy.aws.package import build_lambda_zip
from ephemera.deploy.bound import config_digest
from tests.deploy.aws.conftest import REGION, boto
from tests.deploy.aws.test_plan import aws_example
from tests.deploy.conftest import SECRET_VALUES

ACCOUNT = "123456789012"  # moto's default account


@pytest.fixture
def config_file(tmp_path, s3_endpoint, unique_bucket) -> Path:
    data = aws_example(aws_lambda={"account_id": ACCOUNT, "region": REGION}, aws_s3={"region": REGION, "endpoint": s3_endpoint})
    data["storage"]["bucket"] = unique_bucket
    data["triggers"][1]["bucket"] = unique_bucket
    data["home"] = str(tmp_path / "home")
    boto("s3", s3_endpoint).create_bucket(Bucket=unique_bucket)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def dry_run(config_file, tmp_path, monkeypatch) -> tuple[Path, str]:
    monkeypatch.setattr(cli, "build_lambda_zip", lambda path, **kw: build_lambda_zip(path, **{**kw, "with_deps": False}))
    out_dir, printed = tmp_path / "deploy", io.StringIO()
    assert cli.main(["aws", "--dry-run", "--config", str(config_file), "--out", str(out_dir)], out=printed) == 0, (
        printed.getvalue()
    )
    return out_dir, printed.getvalue()


def test_the_dry_run_writes_a_complete_plan_without_secrets(dry_run):
    out_dir, printed = dry_run
    script = (out_dir / "plan.sh").read_text()
    assert stat.S_IMODE(os.stat(out_dir / "plan.sh").st_mode) == 0o700
    secret = out_dir / "aws-config-secret.json"
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    for value in SECRET_VALUES:
        assert value in secret.read_text()
        assert value not in script and value not in printed
        assert not any(value in p.read_text() for p in (out_dir / "aws").rglob("*.json"))
    for path in re.findall(r"fileb?://(\S+)", script):
        assert Path(path).is_file(), path  # every file a command reads is there
    env = json.loads((out_dir / "aws" / "lambda" / "ephemera-destroy-events-env.json").read_text())["Variables"]
    assert env["EPHEMERA_CONFIG_SHA256"] == config_digest(json.loads(secret.read_text()))
    names = zipfile.ZipFile(out_dir / "ephemera-lambda.zip").namelist()
    assert "ephemera/actions/lambda_entry.py" in names and "ephemera/deploy/aws/plan.py" in names
    assert not any(n.startswith(("ephemera/cli/", "ephemera/runtime/", "ephemera/workloads/")) for n in names)
    assert "aws secretsmanager" in script and "aws scheduler create-schedule" in script
    assert "put-bucket-notification-configuration" in script


def _aws_python() -> str | None:
    """The interpreter the aws command runs on (its script's #! line), if it is a Python one."""
    path = shutil.which("aws")
    if path is None:
        return None
    first = Path(path).read_text(errors="replace").splitlines()[0]
    if first.startswith("#!") and "python" in first:
        return first[2:].strip()
    done = subprocess.run(["bash", "-c", "pyenv which python 2>/dev/null"], capture_output=True, text=True)
    return done.stdout.strip() or None


@pytest.mark.slow
@pytest.mark.skipif(_aws_python() is None, reason="the aws CLI (awscli, Python) is not installed")
def test_the_plan_replays_against_moto_twice(dry_run, s3_endpoint, unique_bucket):
    """Run plan.sh as printed, with the aws CLI's driver (:mod:`tests.deploy.aws.replay_plan`)
    pointed at moto's server: everything exists afterwards, and a second run (the update
    path of every step) succeeds too."""
    out_dir, _ = dry_run
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }
    script = out_dir / "plan-without-bundle.sh"  # the bundle publish step needs the state bucket's real store: left out
    script.write_text(
        "\n".join(line for line in (out_dir / "plan.sh").read_text().splitlines() if " bundle publish " not in line)
    )
    replay = Path(__file__).with_name("replay_plan.py")
    for attempt in (1, 2):
        done = subprocess.run([_aws_python(), str(replay), str(script)], env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"run {attempt}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    lam = boto("lambda", s3_endpoint)
    names = {f["FunctionName"] for f in lam.list_functions()["Functions"]}
    assert {"ephemera-apply", "ephemera-destroy-events", "ephemera-reap-events"} <= names
    sched = boto("scheduler", s3_endpoint)
    assert {s["Name"] for s in sched.list_schedules(GroupName="ephemera")["Schedules"]} >= {"nightly-apply", "ephemera-reaper"}
    note = boto("s3", s3_endpoint).get_bucket_notification_configuration(Bucket=unique_bucket)
    assert {c["LambdaFunctionArn"].rsplit(":", 1)[1] for c in note["LambdaFunctionConfigurations"]} == {"ephemera-destroy-events"}
    secret = boto("secretsmanager", s3_endpoint).get_secret_value(SecretId="ephemera-config")["SecretString"]
    assert json.loads(secret) == json.loads((out_dir / "aws-config-secret.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("architecture, machine", [("x86_64", "x86_64"), ("arm64", "aarch64")])
def test_the_function_zip_carries_its_dependencies_for_the_runtime(tmp_path, architecture, machine):
    """pip installs the functions' requirements for CPython 3.13 on the function's instruction
    set, at the zip's root beside ``ephemera`` (Lambda puts /var/task on sys.path)."""
    path = build_lambda_zip(tmp_path / "f.zip", python="3.13", architecture=architecture)
    names = zipfile.ZipFile(path).namelist()
    assert f"pydantic_core/_pydantic_core.cpython-313-{machine}-linux-gnu.so" in names
    assert "croniter/__init__.py" in names and "yaml/__init__.py" in names and "ephemera/actions/lambda_entry.py" in names
    assert not any(n.startswith(("ibm_", "boto3/")) for n in names)  # IBM only when the config needs it; boto3 is the runtime's
    assert path.stat().st_size < 50 * 1024 * 1024


def test_a_real_deploy_runs_the_steps_and_removes_the_secret_file(config_file, tmp_path, monkeypatch, s3_endpoint):
    """Without --dry-run: the run bundle is published, each step's commands run in order
    (probe, then create when it fails), every file a command names exists while it runs,
    and the folder holding the config's secrets is gone afterwards."""
    monkeypatch.setattr(cli, "build_lambda_zip", lambda path, **kw: build_lambda_zip(path, **{**kw, "with_deps": False}))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    ran: list[list[str]] = []
    seen_secret: list[str] = []

    def runner(cmd: list[str]) -> int:
        ran.append(cmd)
        for word in cmd:
            if word.startswith(("file://", "fileb://")):
                path = Path(word.split("://", 1)[1])
                assert path.is_file(), word
                if path.name == "aws-config-secret.json":
                    seen_secret.append(str(path))
        return (
            1
            if cmd[2]
            in ("get-role", "get-function", "describe-secret", "get-schedule", "get-schedule-group", "remove-permission")
            else 0
        )

    printed = io.StringIO()
    assert cli.main(["aws", "--config", str(config_file), "--out", str(tmp_path / "build")], out=printed, runner=runner) == 0
    verbs = [c[2] for c in ran]
    assert "create-secret" in verbs and "create-function" in verbs and "update-function-code" not in verbs
    assert seen_secret and not Path(seen_secret[0]).exists()  # the temporary secret folder is removed
    for value in SECRET_VALUES:
        assert value not in printed.getvalue() and not any(value in " ".join(c) for c in ran)
