"""``ephemera invoke ACTION [k=v ...] --url URL``, against a real HTTP endpoint on 127.0.0.1 that
calls ``code_engine_main`` the way Code Engine's functions service does
(:mod:`tests.fakes.code_engine_function`): the owner's request, carrying the deployment's
token in the ``Authorization`` header, starts a run; an anonymous one, or one with another
deployment's token, gets 401 and nothing is written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ephemera.actions.entry import code_engine_main
from ephemera.cli import main as cli_main
from ephemera.context import Context
from ephemera.deploy.invoke_token import new_token
from tests.fakes.code_engine_function import FunctionServer

TOKEN = new_token()


@pytest.fixture
def function(config, monkeypatch):
    """The deployed apply function, served over HTTP; the engine's apply is recorded, not run."""
    monkeypatch.setenv("EPHEMERA_ACTION", "apply")
    monkeypatch.setenv("EPHEMERA_CONFIG_JSON", json.dumps(config))
    monkeypatch.setenv("EPHEMERA_INVOKE_TOKEN", TOKEN)
    monkeypatch.setattr("ephemera.actions.apply.apply_run", lambda ctx, run: run)
    server = FunctionServer(code_engine_main)
    yield server
    server.close()


def _files(config: dict) -> list[Path]:
    return [p for p in Path(config["localhost"]["root"]).rglob("*") if p.is_file()]


def _post(url: str, body: dict, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_owner_invokes_with_the_token_from_the_environment(function, config, tmp_path):
    """A separate `ephemera invoke` process: the token comes from the environment, not argv."""
    argv = [sys.executable, "-m", "ephemera.cli", "invoke", "apply", 'params={"folds": 2}', "--url", function.url]
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "EPHEMERA_INVOKE_TOKEN": TOKEN}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] and Context(config).ledger.get(result["run_id"]).job.params["folds"] == 2
    assert function.requests[-1]["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in " ".join(argv) + done.stdout + done.stderr


@pytest.mark.parametrize(
    "headers, query",
    [
        ({}, ""),
        ({"Authorization": f"Bearer {new_token()}"}, ""),
        ({"authorization": "Bearer"}, ""),
        ({}, f"?authorization=Bearer%20{TOKEN}"),  # a query parameter becomes a top-level arg, not a header
    ],
    ids=["no-header", "another-token", "empty-bearer", "token-in-query"],
)  # fixed ids: no token in a test id
def test_an_anonymous_request_over_http_gets_401_and_writes_nothing(function, config, headers, query):
    status, body = _post(function.url + query, {"ephemera_kind": "manual", "token": TOKEN if query else "x"}, headers)
    assert status == 401 and body["error"]["code"] == "UNAUTHORIZED" and TOKEN not in json.dumps(body)
    assert _files(config) == []


def test_another_deployments_token_file_is_refused(function, config, tmp_path, capsys):
    other = tmp_path / "other.invoke-token"
    other.write_text(new_token() + "\n")
    assert cli_main(["invoke", "apply", "--url", function.url, "--token-file", str(other)]) == 1
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "UNAUTHORIZED"
    assert _files(config) == []
    mine = tmp_path / "mine.invoke-token"
    mine.write_text(TOKEN + "\n")
    assert cli_main(["invoke", "apply", "--url", function.url, "--token-file", str(mine)]) == 0
    assert json.loads(capsys.readouterr().out)["ok"]


@pytest.mark.parametrize(
    "param, field",
    [
        ("run_id=gpu-20261208t020000", "run_id"),
        ('params={"entry": "evil:main"}', "params.entry"),
        ("config_file=/etc/passwd", "config_file"),
    ],
)
def test_what_the_function_refuses_comes_back_as_400(function, config, capsys, param, field):
    assert cli_main(["invoke", "apply", param, "--url", function.url]) == 1
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["code"] == "PARAM_INVALID" and f"'{field}'" in error["message"]
    assert list(Context(config).ledger.list()) == []


def test_the_client_never_sends_the_token_where_it_could_leak(function, capsys):
    """Plain http to a non-loopback host, a URL with user:password, a token passed as a
    parameter: refused before any request. A redirect is not followed (urllib would
    resend the Authorization header to the new host)."""
    for argv in (
        ["--url", "http://192.0.2.10/"],
        ["--url", "https://u:p@example.invalid/"],
        [f"token={TOKEN}", "--url", function.url],
    ):
        assert cli_main(["invoke", "status", *argv]) == 2
        assert "error:" in capsys.readouterr().err
    assert function.requests == []
    elsewhere = FunctionServer(lambda args: {"statusCode": 200, "body": {"ok": True}})
    bouncer = FunctionServer(lambda args: {"statusCode": 307, "headers": {"Location": elsewhere.url}, "body": {}})
    try:
        assert cli_main(["invoke", "status", "--url", bouncer.url]) == 1
        assert len(bouncer.requests) == 1 and elsewhere.requests == []
    finally:
        bouncer.close()
        elsewhere.close()


def test_no_token_anywhere_names_the_fix(monkeypatch, capsys):
    monkeypatch.delenv("EPHEMERA_INVOKE_TOKEN", raising=False)
    assert cli_main(["invoke", "status", "--url", "https://fn.example.invalid/"]) == 2
    assert "--token-file" in capsys.readouterr().err


def test_the_owners_copy_is_private_kept_and_rotated(tmp_path):
    """What `ephemera deploy code-engine` binds: made once (0600), re-used, replaced when
    rotated or when the kept file holds no usable token."""
    from ephemera.deploy.invoke_token import load_or_create, token_file

    path = token_file(tmp_path / "home", "proj")
    first, made = load_or_create(path)
    assert made and len(first) >= 43 and (path.stat().st_mode & 0o777) == 0o600
    assert load_or_create(path) == (first, False)
    rotated, made = load_or_create(path, rotate=True)
    assert made and rotated != first and path.read_text().strip() == rotated
    path.write_text("short\n")
    assert load_or_create(path)[1] is True
