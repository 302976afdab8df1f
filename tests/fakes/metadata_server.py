"""A fake IBM Cloud VPC instance metadata service on 127.0.0.1, for tests.

It serves the identity calls of API version ``2025-08-26`` and later, as IBM documents them:

- ``PUT /identity/v1/token?version=...`` with header ``Metadata-Flavor: ibm`` and body
  ``{"expires_in": 5..3600}``: an instance identity token
  ``{access_token, created_at, expires_at, expires_in}``;
- ``POST /identity/v1/iam_tokens?version=...`` with ``Authorization: Bearer <identity
  token>`` and body ``{"trusted_profile": {"id": ...}}`` (or no body: the profile linked
  to the instance): an IAM access token of that profile, JWT-shaped (sdk-core decodes
  its ``exp``/``iat``), with no refresh token. The IAM side is the fake IAM's: tokens
  are minted by :func:`tests.fakes.iam_server.make_access_token` and appended to
  ``server.iam_tokens``, so a fake store can accept exactly those.

Only ``linked_profile`` may be asked for; anything else answers as the service does
for a profile not linked (HTTP 400). Every request is recorded in ``server.requests``.

It also serves ``GET /metadata/v1/instance?version=...`` with ``Authorization: Bearer
<identity token>``: the instance document in ``server.instance`` (a test changes its
``status``, ``status_reasons``, ``lifecycle_state`` or ``lifecycle_reasons`` to play a
preemption); ``server.instance_errors`` answers that many calls with HTTP 500 first.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from tests.fakes.iam_server import make_access_token

MIN_VERSION = "2025-08-26"  # where the /identity/v1 paths start


@dataclass
class MetadataServer:
    linked_profile: str  # the trusted profile linked to the fake instance
    url: str = ""  # http://127.0.0.1:<port>
    requests: list = field(default_factory=list)  # (method, path, headers, body)
    identity_tokens: list = field(default_factory=list)  # instance identity tokens issued
    iam_tokens: list = field(default_factory=list)  # IAM access tokens issued
    token_lifetime: int = 3600  # seconds an IAM token lives
    instance: dict = field(
        default_factory=lambda: {
            "id": "0717_fake",
            "status": "running",
            "status_reasons": [],
            "lifecycle_state": "stable",
            "lifecycle_reasons": [],
            "availability_policy": {"host_failure": "restart", "preemption": "delete"},
        }
    )  # what GET /metadata/v1/instance answers
    instance_errors: int = 0  # answer this many instance calls with HTTP 500 first
    _httpd: ThreadingHTTPServer | None = None

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


def _handler(server: MetadataServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            body = json.loads(raw) if raw else {}
            parsed = urlparse(self.path)
            version = (parse_qs(parsed.query).get("version") or [""])[0]
            server.requests.append((method, parsed.path, dict(self.headers.items()), body))
            if not version or version < MIN_VERSION:
                return self._reply(
                    400,
                    {
                        "errors": [
                            {"code": "bad_version", "message": f"version {version!r}: /identity/v1 needs {MIN_VERSION} or later"}
                        ]
                    },
                )
            if method == "PUT" and parsed.path == "/identity/v1/token":
                if self.headers.get("Metadata-Flavor") != "ibm":
                    return self._reply(400, {"errors": [{"code": "missing_metadata_flavor"}]})
                token = secrets.token_urlsafe(24)
                server.identity_tokens.append(token)
                return self._reply(
                    200,
                    {
                        "access_token": token,
                        "created_at": "2026-01-01T00:00:00Z",
                        "expires_at": "2026-01-01T00:05:00Z",
                        "expires_in": int(body.get("expires_in", 300)),
                    },
                )
            if method == "POST" and parsed.path == "/identity/v1/iam_tokens":
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Bearer ") or auth[7:] not in server.identity_tokens:
                    return self._reply(401, {"errors": [{"code": "invalid_token"}]})
                asked = (body.get("trusted_profile") or {}).get("id", server.linked_profile)
                if asked != server.linked_profile:
                    return self._reply(400, {"errors": [{"code": "trusted_profile_not_linked", "message": asked}]})
                token = make_access_token(subject=asked, lifetime=server.token_lifetime)
                server.iam_tokens.append(token)
                return self._reply(
                    201,
                    {
                        "access_token": token,
                        "created_at": "2026-01-01T00:00:00Z",
                        "expires_at": "2026-01-01T01:00:00Z",
                        "expires_in": server.token_lifetime,
                    },
                )
            if method == "GET" and parsed.path == "/metadata/v1/instance":
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Bearer ") or auth[7:] not in server.identity_tokens:
                    return self._reply(401, {"errors": [{"code": "invalid_token"}]})
                if server.instance_errors > 0:
                    server.instance_errors -= 1
                    return self._reply(500, {"errors": [{"code": "internal_error"}]})
                return self._reply(200, server.instance)
            return self._reply(404, {"errors": [{"code": "not_found", "message": parsed.path}]})

        def do_GET(self):  # noqa: N802
            self._handle("GET")

        def do_PUT(self):  # noqa: N802
            self._handle("PUT")

        def do_POST(self):  # noqa: N802
            self._handle("POST")

    return Handler


def start_metadata_server(linked_profile: str) -> MetadataServer:
    server = MetadataServer(linked_profile=linked_profile)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    server._httpd = httpd
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return server
