"""A fake EC2 instance metadata service (IMDSv2 required) on 127.0.0.1, for tests.

It follows AWS's documented contract for what the spot watcher uses:

- ``PUT /latest/api/token`` with the header ``X-aws-ec2-metadata-token-ttl-seconds``
  (1 to 21600) answers a session token as text; without the header, or with a TTL out
  of range, HTTP 400.
- Every metadata ``GET`` carries the token in ``X-aws-ec2-metadata-token``; with IMDSv2
  required (``http_tokens = "required"``, as the aws-ec2-gpu stack sets), a request
  without a valid token gets HTTP 401.
- ``GET /latest/meta-data/spot/instance-action``: HTTP 404 until EC2 marks the Spot
  Instance for interruption, then the JSON ``{"action": "terminate"|"stop"|"hibernate",
  "time": "<UTC ISO time of the action>"}``.

A test sets ``server.notice`` to play the interruption, ``server.errors`` to answer that
many metadata GETs with HTTP 500 first, and calls ``server.expire_tokens()`` to
invalidate the tokens issued so far. Every request is recorded in ``server.requests``.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
MAX_TTL = 21600


@dataclass
class IMDSServer:
    url: str = ""  # http://127.0.0.1:<port>
    notice: dict | None = None  # the spot/instance-action document, once "EC2" schedules the interruption
    errors: int = 0  # answer this many metadata GETs with HTTP 500 first
    tokens: list = field(default_factory=list)  # session tokens issued and still valid
    requests: list = field(default_factory=list)  # (method, path, headers with lower-case names)
    _httpd: ThreadingHTTPServer | None = None

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


def _handler(server: IMDSServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self, status: int, body: bytes, kind: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self):  # noqa: N802
            server.requests.append(("PUT", self.path, {k.lower(): v for k, v in self.headers.items()}))
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if self.path != "/latest/api/token":
                return self._reply(404, b"Not Found")
            ttl = self.headers.get(TTL_HEADER, "")
            if not ttl.isdigit() or not 1 <= int(ttl) <= MAX_TTL:
                return self._reply(400, b"Bad Request")
            token = secrets.token_urlsafe(32)
            server.tokens.append(token)
            return self._reply(200, token.encode())

        def do_GET(self):  # noqa: N802
            server.requests.append(("GET", self.path, {k.lower(): v for k, v in self.headers.items()}))
            if self.headers.get(TOKEN_HEADER) not in server.tokens:
                return self._reply(401, b"Unauthorized")
            if server.errors > 0:
                server.errors -= 1
                return self._reply(500, b"Internal Server Error")
            if self.path == "/latest/meta-data/spot/instance-action" and server.notice is not None:
                return self._reply(200, json.dumps(server.notice).encode(), "application/json")
            return self._reply(404, b"Not Found")

    return Handler


def start_imds_server() -> IMDSServer:
    server = IMDSServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    server._httpd = httpd
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return server
