"""The dashboard's HTTP server: the standard library's ``ThreadingHTTPServer``, pages
rendered with Jinja2 (autoescaped), read-only (GET and HEAD only).

It binds to 127.0.0.1 unless told otherwise; bound anywhere else it requires a token
-- given, or made up and printed at start -- as ``?token=`` (which then sets an
HttpOnly, SameSite=Strict cookie so links work), a cookie, or an ``Authorization:
Bearer`` header, compared in constant time. Pages of open runs refresh themselves with
a ``<meta http-equiv="refresh">``; no script runs on any page.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import secrets
import socket
import threading
from http import cookies
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlparse

from jinja2 import Environment, FileSystemLoader, select_autoescape

from ephemera.cli.dashboard import views
from ephemera.context import Context
from ephemera.errors import EphemeraError, RunNotFoundError
from ephemera.model.logs import SOURCES

log = logging.getLogger("ephemera.dashboard")
TEMPLATES = Path(__file__).parent / "templates"
COOKIE = "ephemera_dashboard_token"
REFRESH_SECONDS = 5  # while any run shown is open
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'"
_RUN = r"/runs/(?P<run_id>[A-Za-z0-9][A-Za-z0-9_.-]{0,62})"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address, or a name resolved here) is this machine's loopback."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
    except (OSError, ValueError):
        return False


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))
    env.filters["q"] = lambda value: quote(str(value), safe="")
    return env


class Dashboard:
    """The pages, by path; ``render(path, query)`` -> (status, content type, body)."""

    def __init__(self, ctx: Context, refresh: int = REFRESH_SECONDS):
        self.ctx, self.refresh, self.env = ctx, refresh, environment()
        self.routes = [(re.compile(r"^/$"), self.index), (re.compile(r"^/activations$"), self.activations),
                       (re.compile(f"^{_RUN}$"), self.run), (re.compile(f"^{_RUN}/timeline.svg$"), self.svg),
                       (re.compile(f"^{_RUN}/logs$"), self.logs)]

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
        return self.page("logs.html", follow=query.get("follow") == "1",
                         **views.logs_view(self.ctx, run_id, source if source in SOURCES else None, worker))

    def render(self, path: str, query: dict) -> tuple[int, str, bytes]:
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
        return status, "text/html; charset=utf-8", self.env.get_template("error.html").render(
            status=status, message=self.ctx.scrubber.scrub(message), refresh=None).encode()


def make_handler(dashboard: Dashboard, token: str | None):
    class Handler(BaseHTTPRequestHandler):
        server_version = "ephemera-dashboard"

        def _authorised(self, query: dict) -> tuple[bool, bool]:
            """(allowed, set the cookie)."""
            if token is None:
                return True, False
            given = query.get("token")
            if given and hmac.compare_digest(given.encode(), token.encode()):
                return True, True
            header = self.headers.get("Authorization", "")
            if header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), token.encode()):
                return True, False
            jar = cookies.SimpleCookie(self.headers.get("Cookie", ""))
            got = jar.get(COOKIE)
            return bool(got and hmac.compare_digest(got.value.encode(), token.encode())), False

        def _send(self, status: int, content_type: str, body: bytes, set_cookie: bool = False, head: bool = False):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            if set_cookie:
                self.send_header("Set-Cookie", f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/")
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _get(self, head: bool = False):
            url = urlparse(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            allowed, set_cookie = self._authorised(query)
            if not allowed:
                self._send(401, "text/plain; charset=utf-8", b"a token is required: open the URL the dashboard printed\n", head=head)
                return
            try:
                status, content_type, body = dashboard.render(url.path, query)
            except Exception as exc:  # noqa: BLE001 - a page's bug must not stop the server
                log.error("dashboard %s: %s", url.path, dashboard.ctx.scrubber.scrub(f"{type(exc).__name__}: {exc}"))
                status, content_type, body = dashboard.error(500, f"the page failed: {type(exc).__name__}")
            self._send(status, content_type, body, set_cookie, head)

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
    """The running dashboard: ``url`` (with the token, when one is needed), ``close()``."""

    def __init__(self, ctx: Context, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
                 refresh: int = REFRESH_SECONDS):
        if token is None and not is_loopback(host):
            token = secrets.token_urlsafe(24)  # never open beyond this machine without one
        self.token = token
        self.httpd = ThreadingHTTPServer((host, port), make_handler(Dashboard(ctx, refresh), token))
        self.httpd.daemon_threads = True
        shown = f"[{host}]" if ":" in host else host
        self.base = f"http://{shown}:{self.httpd.server_address[1]}"
        self.url = self.base + "/" + (f"?token={token}" if token else "")
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
