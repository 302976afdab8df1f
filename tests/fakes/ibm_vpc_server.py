"""A fake IBM Cloud VPC API on 127.0.0.1: the one call an image build makes, for tests.

``GET /v1/instances/{id}?version=YYYY-MM-DD&generation=2`` with ``Authorization: Bearer
<IAM access token>`` answers ``{"id", "name", "status"}`` as the VPC API does (statuses
``pending | starting | running | stopping | stopped | restarting | deleting | failed``).
Each instance's statuses follow a script, one step per GET (the last one stays):
``server.script("0717_inst-0001", ["running", "stopping", "stopped"])``. A request without
``version``, with a ``generation`` other than 2, or without a bearer token the optional
``token_check`` accepts is refused the way the API refuses it (400 / 401); an unknown
instance is 404. Requests are recorded (path, headers) in ``server.requests``.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class VPCServer:
    """The running fake; ``url`` is the VPC endpoint (``https://<region>.iaas.cloud.ibm.com`` for real)."""

    def __init__(self):
        self.requests: list[tuple[str, dict]] = []  # (path with query, lower-cased headers)
        self.scripts: dict[str, list[str]] = {}  # instance id -> statuses still to answer
        self.token_check = None  # optional callable(access_token) -> bool
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def script(self, instance_id: str, statuses: list[str]) -> None:
        self.scripts[instance_id] = list(statuses)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _answer(self, path: str, headers: dict) -> tuple[int, dict]:
        url = urlparse(path)
        query = parse_qs(url.query)
        if "version" not in query or query.get("generation", ["2"]) != ["2"]:
            return 400, {"errors": [{"code": "bad_request", "message": "version is required; generation must be 2"}]}
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or (self.token_check and not self.token_check(auth[7:])):
            return 401, {"errors": [{"code": "not_authorized", "message": "missing or unknown bearer token"}]}
        match = re.fullmatch(r"/v1/instances/([^/]+)", url.path)
        if not match or match.group(1) not in self.scripts:
            return 404, {"errors": [{"code": "not_found", "message": f"instance not found: {url.path}"}]}
        statuses = self.scripts[match.group(1)]
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        return 200, {"id": match.group(1), "name": "eph-img-builder", "status": status}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):  # noqa: N802
                headers = {k.lower(): v for k, v in self.headers.items()}
                with server._lock:
                    server.requests.append((self.path, headers))
                    status, body = server._answer(self.path, headers)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def start_vpc_server() -> VPCServer:
    return VPCServer()
