"""The dashboard over HTTP (no browser): pages of the ledger, the banner for runs still
up or needing a person, self-refresh only while runs are open, the timeline SVG, logs
with follow, read-only, loopback by default and a token anywhere else."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest

from ephemera.cli.dashboard.server import DashboardServer, is_loopback
from ephemera.context import Context
from ephemera.model.runs import RunError, RunRecord, RunState
from ephemera.vm.heartbeats import write_heartbeat
from ephemera.vm.logship import LogShipper

S = RunState
SECRET = "dash-secret-4f1a9c"


@pytest.fixture
def ctx(local_config):
    context = Context(local_config(ibm={"iam_api_key": SECRET}))
    context.storage.create_bucket(context.config.state_bucket)
    return context


def add_run(ctx, run_id, states, reason="test", **fields):
    ctx.ledger.create(RunRecord(run_id=run_id, workspace="ws", engine="terraform", event={"kind": "alarm", "trigger": "nightly"}))
    for state in states:
        ctx.ledger.transition(run_id, state, reason, **fields)


def get(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


@pytest.fixture
def served(ctx):
    servers = []

    def start(host="127.0.0.1", token=None):
        server = DashboardServer(ctx, host, 0, token, refresh=2).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def test_runs_banner_and_refresh_while_a_run_is_open(ctx, served):
    add_run(ctx, "ws-1", [S.APPLYING, S.RUNNING, S.SUCCEEDED, S.DESTROYING, S.DESTROYED])
    add_run(ctx, "ws-2", [S.APPLYING, S.RUNNING], reason="<script>alert(1)</script>")
    write_heartbeat(ctx.storage, ctx.config.state_bucket, "ws-2", 0, {"state": "running", "phases": {"booted": "2026-12-02T10:00:00+00:00"}})
    server = served()
    status, headers, page = get(server.url)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "ws-1" in page and "ws-2" in page and 'id="banner-up"' in page and "1 run still up" in page
    assert 'http-equiv="refresh" content="2"' in page  # an open run: the page refreshes itself
    assert "ok " in page and "0.0000 USD" in page  # the VM heartbeat and the cost columns
    assert "<script" not in page and "script-src" not in headers["Content-Security-Policy"]

    status, _, run_page = get(server.base + "/runs/ws-2")
    assert status == 200 and '<figure id="timeline"><svg' in run_page and 'data-state="RUNNING"' in run_page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in run_page and "<script>" not in run_page
    status, headers, svg = get(server.base + "/runs/ws-2/timeline.svg")
    assert status == 200 and headers["Content-Type"] == "image/svg+xml" and svg.startswith("<svg")


def test_runs_show_svg_prints_the_dashboards_picture(ctx, served, tmp_path, capsys):
    """`ephemera runs show RUN --svg` and the dashboard's timeline.svg are one picture."""
    import yaml

    from ephemera.cli import main

    add_run(ctx, "ws-2", [S.APPLYING, S.RUNNING])
    write_heartbeat(ctx.storage, ctx.config.state_bucket, "ws-2", 0, {"state": "running", "phases": {"booted": "2026-12-02T10:00:00+00:00"}})
    path = tmp_path / "ephemera.yaml"
    path.write_text(yaml.safe_dump(ctx.config.to_dict(redact=False)))
    assert main(["--config", str(path), "runs", "show", "ws-2", "--svg"]) == 0
    printed = capsys.readouterr().out
    _, _, svg = get(served().base + "/runs/ws-2/timeline.svg")
    # an open run is drawn up to "now", so the widths differ; what each shape says does not
    titles = [re.findall(r"<title>([^<]*)</title>", picture) for picture in (printed, svg)]
    assert printed.startswith("<svg") and titles[0] == titles[1]
    assert any("RUNNING" in t for t in titles[0]) and any("booted" in t for t in titles[0])


def test_no_refresh_once_everything_is_destroyed_and_a_person_banner_when_needed(ctx, served):
    add_run(ctx, "ws-1", [S.APPLYING, S.RUNNING, S.SUCCEEDED, S.DESTROYING, S.DESTROYED])
    server = served()
    _, _, page = get(server.url)
    assert "refresh" not in page.split("<style>")[0] and 'id="banner-calm"' in page
    add_run(ctx, "ws-3", [S.APPLYING, S.RUNNING, S.SUCCEEDED, S.DESTROYING])
    ctx.ledger.update("ws-3", lambda r: r.fail(RunError("DESTROY_FAILED", f"provider refused (key {SECRET})"), S.DESTROY_FAILED))
    _, _, page = get(server.url)
    assert 'id="banner-person"' in page and "ws-3" in page.split('id="banner-person"')[1].split("</div>")[0]
    _, _, run_page = get(server.base + "/runs/ws-3")
    assert "needs a person" in run_page and SECRET not in run_page and SECRET not in page


def test_logs_page_follows_an_open_run(ctx, served):
    add_run(ctx, "ws-2", [S.APPLYING, S.RUNNING])
    ship = LogShipper(ctx.storage, ctx.config.state_bucket, "ws-2", 0, ctx.scrubber)
    ship.add("workload", "2026-12-02T10:00:01.000+00:00 INFO ephemera.workload: fold 1 done")
    ship.flush()
    server = served()
    _, _, page = get(server.base + "/runs/ws-2/logs?follow=1")
    assert "vm0 workload   INFO ephemera.workload: fold 1 done" in page
    assert 'content="2;url=?follow=1#end"' in page
    _, _, only_agent = get(server.base + "/runs/ws-2/logs?source=agent")
    assert "fold 1 done" not in only_agent


def test_read_only_and_unknown_pages(ctx, served):
    server = served()
    request = urllib.request.Request(server.url, data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 405
    assert get(server.base + "/runs/no-such-run")[0] == 404
    assert get(server.base + "/etc/passwd")[0] == 404


def test_beyond_loopback_a_token_is_required(ctx, served):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")
    server = served(host="0.0.0.0")
    assert server.token and server.url.endswith(f"?token={server.token}")
    local = server.base.replace("0.0.0.0", "127.0.0.1")
    assert get(local + "/")[0] == 401
    assert get(local + "/?token=wrong")[0] == 401
    status, headers, _ = get(local + f"/?token={server.token}")
    assert status == 200 and "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
    cookie = headers["Set-Cookie"].split(";")[0]
    assert get(local + "/activations", {"Cookie": cookie})[0] == 200
    assert get(local + "/activations", {"Authorization": f"Bearer {server.token}"})[0] == 200
    given = served(host="0.0.0.0", token="my-own-token-123")
    assert get(given.base.replace("0.0.0.0", "127.0.0.1") + "/?token=my-own-token-123")[0] == 200
