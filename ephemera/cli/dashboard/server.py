"""The dashboard's HTTP server: the standard library's ``ThreadingHTTPServer``, pages
rendered with Jinja2 (autoescaped), read-only (GET and HEAD only).

It binds to 127.0.0.1 unless told otherwise and answers only requests whose ``Host``
names it (:class:`.access.HostCheck`; 421 otherwise, against DNS rebinding). Bound
anywhere else it requires a token -- given, or made up and printed at start -- as
``?token=`` (which sets an HttpOnly, SameSite=Strict cookie and redirects to the same
URL without the token, so it stays out of history and the address bar), a cookie, or
an ``Authorization: Bearer`` header, compared in constant time. With a certificate
and key it serves HTTPS (the cookie is then ``Secure``); otherwise a non-loopback bind
is clear text, which :attr:`DashboardServer.warning` says. Pages of open runs refresh
themselves with a ``<meta http-equiv="refresh">``; no script runs on any page.
"""

from __future__ import annotations

import logging
import re
import secrets
import ssl
import threading
from http import cookies
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import parse_qs, parse_qsl, quote, unquote, urlencode, urlparse

from jinja2 import Environment, FileSystemLoader, select_autoescape

from ephemera.cli.dashboard import views
from ephemera.cli.dashboard.access import HostCheck, check_token, is_loopback, token_matches
from ephemera.context import Context
from ephemera.cli.outputs import unsafe_name
from ephemera.errors import EphemeraError, NoSuchKeyError, ParamError, RunNotFoundError
from ephemera.model.logs import SOURCES

log = logging.getLogger("ephemera.dashboard")
TEMPLATES = Path(__file__).parent / "templates"
COOKIE = "ephemera_dashboard_token"
REFRESH_SECONDS = 5  # while any run shown is open
MAX_DOWNLOAD = 64 * 1024 * 1024  # bytes: a larger output is fetched with `ephemera outputs --get`
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'"
_RUN = r"/runs/(?P<run_id>[A-Za-z0-9][A-Za-z0-9_.-]{0,62})"


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))
    env.filters["q"] = lambda value: quote(str(value), safe="")
    env.filters["qpath"] = lambda value: quote(str(value), safe="/")  # an output's name keeps its folders
    return env


class Dashboard:
    """The pages, by path; ``render(path, query)`` -> (status, content type, body)."""

    def __init__(self, ctx: Context, refresh: int = REFRESH_SECONDS):
        self.ctx, self.refresh, self.env = ctx, refresh, environment()
        self.routes: list[tuple[re.Pattern[str], Callable[..., tuple[int, str, bytes]]]] = [
            (re.compile(r"^/$"), self.index),
            (re.compile(r"^/activations$"), self.activations),
            (re.compile(f"^{_RUN}$"), self.run),
            (re.compile(f"^{_RUN}/timeline.svg$"), self.svg),
            (re.compile(f"^{_RUN}/logs$"), self.logs),
            (re.compile(f"^{_RUN}/outputs/(?P<name>.+)$"), self.output),
        ]

    def page(self, name: str, **data) -> tuple[int, str, bytes]:
        return 200, "text/html; charset=utf-8", self.env.get_template(name).render(refresh=self.refresh, **data).encode()

    def index(self, query: dict) -> tuple[int, str, bytes]:
        return self.page("index.html", **views.index_view(self.ctx))

    def activations(self, query: dict) -> tuple[int, str, bytes]:
        return self.page("activations.html", **views.activations_view(self.ctx))

    def run(self, query: dict, run_id: str) -> tuple[int, str, bytes]:
        return self.page("run.html", **views.run_view(self.ctx, run_id))

    def svg(self, query: dict, run_id: str) -> tuple[int, str, bytes]:
        return 200, "image/svg+xml", views.run_svg(self.ctx, run_id).encode()

    def logs(self, query: dict, run_id: str) -> tuple[int, str, bytes]:
        source = query.get("source") or None
        worker = int(query["worker"]) if (query.get("worker") or "").isdigit() else None
        return self.page(
            "logs.html",
            follow=query.get("follow") == "1",
            **views.logs_view(self.ctx, run_id, source if source in (*SOURCES, "all") else None, worker),
        )

    def output(self, query: dict, run_id: str, name: str) -> tuple:
        """One output object of the run, as a download (never rendered: it is the workload's
        bytes, so ``attachment`` and ``application/octet-stream``, under the page's CSP)."""
        name = unquote(name)
        run = self.ctx.ledger.get(run_id)
        if run.job is None or unsafe_name(name):
            return self.error(404, "no such output object")
        key = run.job.output_prefix + name
        try:
            size = self.ctx.storage.head(run.job.output_bucket, key).size
        except NoSuchKeyError:
            return self.error(404, "no such output object")
        if size > MAX_DOWNLOAD:
            return self.error(
                413,
                f"{name} is {size} bytes, more than the dashboard serves; fetch it with `ephemera outputs {run_id} --get DIR`",
            )
        body = self.ctx.storage.get(run.job.output_bucket, key)
        filename = quote(name.rsplit("/", 1)[-1], safe="")
        return 200, "application/octet-stream", body, {"Content-Disposition": f"attachment; filename*=UTF-8''{filename}"}

    def render(self, path: str, query: dict) -> tuple:
        for pattern, handler in self.routes:
            match = pattern.match(path)
            if match:
                try:
                    return handler(query, **match.groupdict())
                except RunNotFoundError as exc:
                    return self.error(404, exc.message)
                except EphemeraError as exc:
                    return self.error(500, exc.message)
        return self.error(404, f"no page at {path}")

    def error(self, status: int, message: str) -> tuple[int, str, bytes]:
        return (
            status,
            "text/html; charset=utf-8",
            self.env.get_template("error.html")
            .render(status=status, message=self.ctx.scrubber.scrub(message), refresh=None)
            .encode(),
        )


def make_handler(dashboard: Dashboard, token: str | None, hosts: HostCheck, secure: bool = False):
    cookie_flags = "HttpOnly; SameSite=Strict; Path=/" + ("; Secure" if secure else "")

    class Handler(BaseHTTPRequestHandler):
        server_version = "ephemera-dashboard"

        def _authorised(self, query: dict) -> tuple[bool, bool]:
            """(allowed, came with ?token= -- set the cookie and redirect)."""
            if token is None:
                return True, False
            if token_matches(query.get("token"), token):
                return True, True
            header = self.headers.get("Authorization", "")
            if header.startswith("Bearer ") and token_matches(header[7:], token):
                return True, False
            try:
                got = cookies.SimpleCookie(self.headers.get("Cookie", "")).get(COOKIE)
            except cookies.CookieError:
                got = None
            return bool(got and token_matches(got.value, token)), False

        def _send(self, status: int, content_type: str, body: bytes, head: bool = False, extra: dict | None = None):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _get(self, head: bool = False):
            if not hosts.allows(self.headers.get("Host")):
                # RFC 9110 15.5.20: 421 Misdirected Request, for a request not meant for this server
                self._send(
                    421,
                    "text/plain; charset=utf-8",
                    b"this dashboard does not answer to that Host name\n",
                    head=head,
                    extra={"Connection": "close"},
                )
                self.close_connection = True
                return
            url = urlparse(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            allowed, with_token = self._authorised(query)
            if not allowed:
                self._send(
                    401, "text/plain; charset=utf-8", b"a token is required: open the URL the dashboard printed\n", head=head
                )
                return
            if with_token:  # the cookie carries it from now on; the URL drops it
                rest = urlencode([(k, v) for k, v in parse_qsl(url.query, keep_blank_values=True) if k != "token"])
                path = url.path if re.match(r"^/(?![/\\])", url.path) else "/"  # never "//host": no open redirect
                self._send(
                    303,
                    "text/plain; charset=utf-8",
                    b"",
                    head=head,
                    extra={"Set-Cookie": f"{COOKIE}={token}; {cookie_flags}", "Location": path + (f"?{rest}" if rest else "")},
                )
                return
            try:
                status, content_type, body, *headers = dashboard.render(url.path, query)
            except Exception as exc:  # noqa: BLE001 - a page's bug must not stop the server
                log.error("dashboard %s: %s", url.path, dashboard.ctx.scrubber.scrub(f"{type(exc).__name__}: {exc}"))
                status, content_type, body, headers = *dashboard.error(500, f"the page failed: {type(exc).__name__}"), []
            self._send(status, content_type, body, head, extra=headers[0] if headers else None)

        def do_GET(self):  # noqa: N802 - http.server's names
            self._get()

        def do_HEAD(self):  # noqa: N802
            self._get(head=True)

        def _refuse(self):
            self._send(405, "text/plain; charset=utf-8", b"the dashboard is read-only\n")

        do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815

        def log_message(self, fmt, *args):
            log.debug("%s " + fmt, self.address_string(), *args)

    return Handler


class DashboardServer:
    """The running dashboard: ``url`` (with the token, when one is needed), ``warning``
    (what to tell the operator about the bind, or None), ``close()``."""

    def __init__(
        self,
        ctx: Context,
        host: str = "127.0.0.1",
        port: int = 8765,
        token: str | None = None,
        refresh: int = REFRESH_SECONDS,
        allow_hosts: Iterable[str] = (),
        tls_cert: str | None = None,
        tls_key: str | None = None,
        token_source: str = "token",
    ):
        token = check_token(token, token_source)  # an empty token is none; a short one is refused
        if token is None and not is_loopback(host):
            token = secrets.token_urlsafe(32)  # never open beyond this machine without one
        self.token = token
        tls = _tls_context(tls_cert, tls_key)
        self.httpd = ThreadingHTTPServer(
            (host, port), make_handler(Dashboard(ctx, refresh), token, HostCheck(host, allow_hosts), secure=tls is not None)
        )
        if tls is not None:
            # the handshake happens in the request's thread, so a slow client cannot stall accept()
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.httpd.daemon_threads = True
        shown = f"[{host}]" if ":" in host else host
        self.base = f"{'https' if tls else 'http'}://{shown}:{self.httpd.server_address[1]}"
        self.url = self.base + "/" + (f"?token={token}" if token else "")
        self.warning = (
            None
            if tls or is_loopback(host)
            else (
                f"warning: the dashboard on {host} is plain HTTP: its token and pages cross the network in clear text; "
                "serve it with --tls-cert and --tls-key, or bind 127.0.0.1 and reach it through an SSH tunnel"
            )
        )
        self._thread: threading.Thread | None = None

    def start(self) -> "DashboardServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """A server TLS context from a certificate chain and its key (PEM files), or None."""
    if not cert and not key:
        return None
    if not (cert and key):
        missing = "--tls-key" if cert else "--tls-cert"
        raise ParamError(missing, "is needed with the other", "give both --tls-cert CERT.pem and --tls-key KEY.pem")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ParamError(
            "--tls-cert",
            f"cannot load {cert} with {key}: {getattr(exc, 'strerror', None) or exc}",
            "give a PEM certificate chain and its PEM private key",
        ) from None
    return context


__all__ = ["Dashboard", "DashboardServer", "is_loopback"]
