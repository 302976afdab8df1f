"""The dashboard over HTTP (no browser): pages of the ledger, the banner for runs still
up or needing a person, self-refresh only while runs are open, the timeline SVG, logs
with follow, read-only, loopback by default and a token anywhere else; only its own Host names
(DNS rebinding), tokens from the environment or a file, of 16 bytes or more, dropped
from the URL by a redirect; TLS when given a certificate."""

from __future__ import annotations

import http.client
import re
import urllib.error
import urllib.request

import pytest

from ephemera.cli.dashboard.server import DashboardServer, is_loopback
from ephemera.context import Context
from ephemera.errors import ParamError
from ephemera.model.runs import RunError, RunRecord, RunState
from ephemera.model.heartbeat import Heartbeat, VMState
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
    write_heartbeat(
        ctx.storage,
        ctx.config.state_bucket,
        Heartbeat(run_id="ws-2", worker=0, state=VMState.RUNNING, phases={"booted": "2026-12-02T10:00:00+00:00"}),
    )
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
    write_heartbeat(
        ctx.storage,
        ctx.config.state_bucket,
        Heartbeat(run_id="ws-2", worker=0, state=VMState.RUNNING, phases={"booted": "2026-12-02T10:00:00+00:00"}),
    )
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


def raw(server, path="/", host=None, headers=None, method="GET"):
    """One request with exactly the Host header given (http.client; redirects not followed)."""
    port = server.httpd.server_address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers={"Host": f"127.0.0.1:{port}" if host is None else host, **(headers or {})})
        response = conn.getresponse()
        return response.status, dict(response.headers), response.read().decode()
    finally:
        conn.close()


def test_beyond_loopback_a_token_is_required(ctx, served):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")
    server = served(host="0.0.0.0")
    assert server.token and len(server.token) >= 32 and server.url.endswith(f"?token={server.token}")
    assert raw(server, "/")[0] == 401
    assert raw(server, "/?token=wrong")[0] == 401
    status, headers, _ = raw(server, f"/activations?token={server.token}")
    assert status == 303 and "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
    cookie = headers["Set-Cookie"].split(";")[0]
    assert raw(server, "/activations", headers={"Cookie": cookie})[0] == 200
    assert raw(server, "/activations", headers={"Authorization": f"Bearer {server.token}"})[0] == 200
    given = served(host="0.0.0.0", token="my-own-token-123")
    assert raw(given, "/", headers={"Authorization": "Bearer my-own-token-123"})[0] == 200


def test_a_token_in_the_url_is_dropped_by_a_redirect_after_it_sets_the_cookie(ctx, served):
    """Finding 6: ``?token=`` stayed in the address bar, the history and any copied link.
    Now the answer is a 303 to the same URL without it (other parameters kept), and the
    cookie it sets is what the next request carries."""
    add_run(ctx, "ws-2", [S.APPLYING, S.RUNNING])
    server = served(host="0.0.0.0")
    status, headers, body = raw(server, f"/runs/ws-2/logs?follow=1&token={server.token}&source=agent")
    assert status == 303 and body == ""
    assert headers["Location"] == "/runs/ws-2/logs?follow=1&source=agent" and server.token not in headers["Location"]
    cookie = headers["Set-Cookie"].split(";")[0]
    assert cookie == f"ephemera_dashboard_token={server.token}"
    assert raw(server, headers["Location"], headers={"Cookie": cookie})[0] == 200
    # a path that a browser would read as another host never becomes the redirect's target
    for path in (f"//evil.example/?token={server.token}", f"/\\evil.example/?token={server.token}"):
        status, headers, _ = raw(server, path)
        assert status == 303 and not headers["Location"].startswith(("//", "/\\")) and "token" not in headers["Location"]


def test_dns_rebinding_a_foreign_host_name_gets_421(ctx, served):
    """Finding 5: a page on ``evil.example`` whose name re-resolves to 127.0.0.1 sends its
    requests here with ``Host: evil.example``; the token-less loopback dashboard served it
    every page. Now any Host name but the bound ones gets 421 Misdirected Request."""
    add_run(ctx, "ws-1", [S.APPLYING, S.RUNNING], reason="secret plans")
    server = served()
    port = server.httpd.server_address[1]
    for host in (
        "evil.example",
        f"evil.example:{port}",
        "evil.example.",
        "127.0.0.1.evil.example",
        "localhost.evil.example",
        "",
        "bad host:x",
    ):
        for path in ("/", "/runs/ws-1", "/runs/ws-1/logs", "/activations", "/runs/ws-1/timeline.svg"):
            status, _, body = raw(server, path, host=host)
            assert status == 421 and "ws-1" not in body and "secret plans" not in body, (host, path)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST.:{port}", f"[::1]:{port}", "127.0.0.1"):
        status, _, page = raw(server, "/", host=host)
        assert status == 200 and "ws-1" in page, host
    assert raw(server, "/", method="HEAD", host="evil.example")[0] == 421
    # a token does not open it to a foreign name either, and --allow-host adds one
    open_to = served(host="0.0.0.0", token="t" * 20)
    assert raw(open_to, "/", host="evil.example", headers={"Authorization": "Bearer " + "t" * 20})[0] == 421
    assert raw(open_to, "/", host="10.1.2.3:80", headers={"Authorization": "Bearer " + "t" * 20})[0] == 200
    proxied = DashboardServer(ctx, "127.0.0.1", 0, None, allow_hosts=["dash.example.org"]).start()
    try:
        assert raw(proxied, "/", host="dash.example.org")[0] == 200
        assert raw(proxied, "/", host="evil.example")[0] == 421
    finally:
        proxied.close()


@pytest.mark.parametrize("token", ["", "x", "short-token-15b"])
def test_empty_and_short_tokens(ctx, served, token):
    """Finding 6: ``EPHEMERA_DASHBOARD_TOKEN=""`` with ``--host 0.0.0.0`` let in an empty
    ``Bearer`` or cookie, and a one-character token was accepted. An empty token is now no
    token (a strong one is made up), and one under 16 bytes is refused, naming where it
    came from and how to make a good one."""
    if not token:
        server = served(host="0.0.0.0", token=token)
        assert server.token and len(server.token) >= 32
        assert raw(server, "/", headers={"Authorization": "Bearer "})[0] == 401
        assert raw(server, "/", headers={"Cookie": "ephemera_dashboard_token="})[0] == 401
        assert raw(server, "/?token=")[0] == 401
        return
    with pytest.raises(ParamError) as info:
        DashboardServer(ctx, "0.0.0.0", 0, token, token_source="EPHEMERA_DASHBOARD_TOKEN")
    assert "'EPHEMERA_DASHBOARD_TOKEN'" in info.value.message and "16 bytes" in info.value.message
    assert "secrets.token_urlsafe(32)" in info.value.message and token not in info.value.message.split(":")[0]


@pytest.mark.parametrize(
    "token", ["has;semicolon-0123456789", "has space 0123456789", "crlf\r\nSet-Cookie: x=1-0123", "base64+slash/and=0123456789"]
)
def test_a_token_that_would_not_pass_unchanged_is_refused(ctx, token):
    """A token goes into a query string, a cookie and a header: a ';' would cut the cookie, a
    CR/LF would add a header of its own, a '+' becomes a space in a query."""
    with pytest.raises(ParamError) as info:
        DashboardServer(ctx, "0.0.0.0", 0, token, token_source="--token-file")
    assert "'--token-file'" in info.value.message and "-._~" in info.value.message


def test_the_cli_reads_the_token_from_env_or_file_and_refuses_it_on_the_command_line(ctx, tmp_path, monkeypatch, capsys):
    """Finding 6: ``--token VALUE`` showed in ``ps`` to every user of the machine. It is now
    refused with the two ways that do not; the environment and ``--token-file`` work, an
    empty variable is no token, a short one is an error naming the variable; and a
    non-loopback bind without TLS says on stderr that it is clear text."""
    import yaml

    from ephemera.cli import main
    from ephemera.cli.dashboard import server as server_module

    path = tmp_path / "ephemera.yaml"
    path.write_text(yaml.safe_dump(ctx.config.to_dict(redact=False)))
    started = []

    def serve_once(self):
        started.append(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(server_module.DashboardServer, "serve_forever", serve_once)
    base = ["--config", str(path), "dashboard", "--port", "0"]

    assert main(base + ["--token", "a-long-enough-token-0123"]) == 2
    err = capsys.readouterr().err
    assert "'--token'" in err and "ps" in err and "EPHEMERA_DASHBOARD_TOKEN" in err and "--token-file" in err
    assert not started

    monkeypatch.setenv("EPHEMERA_DASHBOARD_TOKEN", "x")
    assert main(base + ["--host", "0.0.0.0"]) == 2
    assert "'EPHEMERA_DASHBOARD_TOKEN'" in capsys.readouterr().err and not started

    monkeypatch.setenv("EPHEMERA_DASHBOARD_TOKEN", "")
    assert main(base + ["--host", "0.0.0.0"]) == 0
    out, err = capsys.readouterr()
    assert started[-1].token and "?token=" + started[-1].token in out
    assert "plain HTTP" in err and "--tls-cert" in err

    monkeypatch.setenv("EPHEMERA_DASHBOARD_TOKEN", "from-the-environment-0123")
    assert main(base + ["--host", "0.0.0.0"]) == 0 and started[-1].token == "from-the-environment-0123"
    capsys.readouterr()

    token_file = tmp_path / "token"
    token_file.write_text("from-a-file-0123456789\n")
    token_file.chmod(0o600)
    assert main(base + ["--host", "0.0.0.0", "--token-file", str(token_file)]) == 0
    assert started[-1].token == "from-a-file-0123456789" and "other users" not in capsys.readouterr().err
    token_file.chmod(0o644)
    assert main(base + ["--host", "0.0.0.0", "--token-file", str(token_file)]) == 0
    assert "can be read by other users" in capsys.readouterr().err
    assert main(base + ["--token-file", str(tmp_path / "missing")]) == 2
    assert "'--token-file'" in capsys.readouterr().err

    monkeypatch.delenv("EPHEMERA_DASHBOARD_TOKEN")
    assert main(base) == 0  # loopback: no token, no clear-text warning
    out, err = capsys.readouterr()
    assert started[-1].token is None and "plain HTTP" not in err


def test_tls_serves_https_with_a_secure_cookie(ctx, tmp_path):
    """With ``--tls-cert/--tls-key`` the dashboard speaks HTTPS (no clear-text warning) and
    its cookie is ``Secure``."""
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    server = DashboardServer(ctx, "0.0.0.0", 0, "tls-token-0123456789", tls_cert=str(cert), tls_key=str(key)).start()
    try:
        assert server.base.startswith("https://") and server.warning is None
        context = ssl.create_default_context(cafile=str(cert))
        conn = http.client.HTTPSConnection("127.0.0.1", server.httpd.server_address[1], timeout=10, context=context)
        conn.request("GET", "/?token=tls-token-0123456789")
        response = conn.getresponse()
        assert response.status == 303 and "Secure" in response.headers["Set-Cookie"]
        conn.close()
    finally:
        server.close()
    with pytest.raises(ParamError, match="--tls-key"):
        DashboardServer(ctx, "127.0.0.1", 0, None, tls_cert=str(cert))


def test_the_run_page_names_the_prepared_image_its_vms_started_from(ctx, served):
    add_run(ctx, "ws-3", [S.APPLYING, S.RUNNING])
    bundle = {"key": "k", "sha256": "b" * 64, "size": 1, "wheel": "w", "requirements": [], "source_files": 0}
    ctx.ledger.update("ws-3", lambda r: setattr(r, "bundle", {**bundle, "image": "ami-0123456789abcdef0"}))
    _, _, page = get(served().base + "/runs/ws-3")
    assert '<p id="image">image: ami-0123456789abcdef0 (prepared from the bundle&#39;s lock' in page
    ctx.ledger.update("ws-3", lambda r: setattr(r, "bundle", {**bundle, "image": None}))
    _, _, page = get(served().base + "/runs/ws-3")
    assert '<p id="image">image: none (stock install' in page
