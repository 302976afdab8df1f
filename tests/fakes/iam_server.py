"""A fake IBM Cloud IAM token service on 127.0.0.1, for tests.

It answers ``POST /identity/token`` the way IAM does:

- ``grant_type=urn:ibm:params:oauth:grant-type:apikey`` with ``apikey``: a known key
  gets ``{access_token, refresh_token, token_type: "Bearer", expires_in: 3600,
  expiration}``; an unknown key gets HTTP 400 with IAM's error body
  (``errorCode: BXNIM0415E``, "Provided API key could not be found.").
- ``grant_type=refresh_token`` with a refresh token this server issued: a new token.

``access_token`` is JWT-shaped (base64url header, claims with ``iat``/``exp``, a
signature segment) because ibm-cloud-sdk-core decodes it to learn the expiry. A
refresh token is returned whether or not the request carries HTTP basic auth
``bx:bx``; ``requests`` records whether it did (``basic_auth``), so a test can assert
that a client asked the way IAM requires for refresh tokens.

Every request is recorded in ``server.requests`` (method, path, headers, form).
API (kept stable, other test suites use it)::

    server = start_iam_server({"my-api-key"})
    server.url          # http://127.0.0.1:<port>; the token URL is url + "/identity/token"
    server.requests     # list[IAMRequest]
    server.tokens       # every access token issued, oldest first
    server.stop()
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

TOKEN_PATH = "/identity/token"
APIKEY_GRANT = "urn:ibm:params:oauth:grant-type:apikey"
REFRESH_GRANT = "refresh_token"


@dataclass
class IAMRequest:
    """One request the fake IAM received."""

    method: str  # HTTP method, e.g. "POST"
    path: str  # request path, e.g. "/identity/token"
    headers: dict[str, str]  # request headers (names as sent)
    form: dict[str, str]  # the url-encoded form body, one value per field
    basic_auth: tuple[str, str] | None  # decoded HTTP basic credentials, if any


@dataclass
class IAMServer:
    """A running fake IAM. ``valid_api_keys`` may be changed while it runs."""

    url: str  # base URL, http://127.0.0.1:<port>
    valid_api_keys: set[str]  # API keys that get a token
    requests: list[IAMRequest] = field(default_factory=list)  # every request received, in order
    tokens: list[str] = field(default_factory=list)  # every access token issued, in order
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # refresh token -> API key it belongs to
    lock: threading.Lock = field(default_factory=threading.Lock)  # guards the lists above
    _httpd: ThreadingHTTPServer | None = None  # the serving HTTP server
    _thread: threading.Thread | None = None  # the serving thread

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_access_token(subject: str, lifetime: int = 3600) -> str:
    """A JWT-shaped token (unsigned in any meaningful way) with iat/exp claims."""
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": "fake-iam"}
    claims = {
        "iam_id": f"iam-ServiceId-{subject}",
        "sub": subject,
        "iss": "https://iam.cloud.ibm.com/identity",
        "grant_type": APIKEY_GRANT,
        "iat": now,
        "exp": now + lifetime,
        "jti": secrets.token_hex(8),
    }
    parts = [json.dumps(header).encode(), json.dumps(claims).encode(), secrets.token_bytes(32)]
    return ".".join(_b64url(p) for p in parts)


def _make_handler(server: IAMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args) -> None:  # noqa: A002 - keep test output quiet
            return

        def _record(self, form: dict[str, str]) -> None:
            auth = self.headers.get("Authorization", "")
            basic = None
            if auth.lower().startswith("basic "):
                try:
                    user, _, pw = base64.b64decode(auth[6:].strip()).decode().partition(":")
                    basic = (user, pw)
                except (ValueError, UnicodeDecodeError):
                    basic = None
            with server.lock:
                server.requests.append(IAMRequest(self.command, self.path, dict(self.headers.items()), form, basic))

        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, code: str, message: str) -> None:
            self._reply(
                status,
                {
                    "context": {"requestId": secrets.token_hex(8)},
                    "errorCode": code,
                    "errorMessage": message,
                },
            )

        def do_GET(self) -> None:  # noqa: N802
            self._record({})
            self._error(404, "BXNIM0001E", "Not found")

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
            self._record(form)
            if self.path.split("?")[0] != TOKEN_PATH:
                return self._error(404, "BXNIM0001E", "Not found")
            grant = form.get("grant_type")
            if grant == APIKEY_GRANT:
                api_key = form.get("apikey")
                if not api_key:
                    return self._error(400, "BXNIM0009E", "Property missing or empty. Property=apikey")
                if api_key not in server.valid_api_keys:
                    return self._error(400, "BXNIM0415E", "Provided API key could not be found.")
            elif grant == REFRESH_GRANT:
                with server.lock:
                    api_key = server.refresh_tokens.get(form.get("refresh_token", ""))
                if api_key is None or api_key not in server.valid_api_keys:
                    return self._error(400, "BXNIM0407E", "Provided refresh token is invalid.")
            else:
                return self._error(400, "BXNIM0308E", f"Operation not supported. grant_type={grant}")
            token = make_access_token(subject=f"key{abs(hash(api_key)) % 10**8}")
            refresh = secrets.token_urlsafe(32)
            with server.lock:
                server.tokens.append(token)
                server.refresh_tokens[refresh] = api_key
            now = int(time.time())
            self._reply(
                200,
                {
                    "access_token": token,
                    "refresh_token": refresh,
                    "ims_user_id": 1,
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "expiration": now + 3600,
                    "scope": "ibm openid",
                },
            )

    return Handler


def start_iam_server(valid_api_keys: set[str]) -> IAMServer:
    """Start a fake IAM on 127.0.0.1 with a free port; stop it with ``.stop()``."""
    server = IAMServer(url="", valid_api_keys=set(valid_api_keys))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(server))
    httpd.daemon_threads = True
    host, port = httpd.server_address[:2]
    server.url = f"http://{host}:{port}"
    server._httpd = httpd
    server._thread = threading.Thread(target=httpd.serve_forever, name="fake-iam", daemon=True)
    server._thread.start()
    return server
