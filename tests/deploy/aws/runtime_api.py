"""A Lambda Runtime API on 127.0.0.1, as documented, for running handlers under AWS's own
runtime interface client (``python -m awslambdaric module.handler``).

The contract (AWS Lambda Developer Guide, "Using the Lambda runtime API for custom
runtimes", API version 2018-06-01): "runtimes get the API endpoint from the
``AWS_LAMBDA_RUNTIME_API`` environment variable, add the API version, and add the
desired resource path", e.g. ``http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/next``.

- **Next invocation**, ``GET /runtime/invocation/next``: "The response body contains
  the payload from the invocation, which is a JSON document that contains event data
  from the function trigger. The response headers contain additional data about the
  invocation": ``Lambda-Runtime-Aws-Request-Id`` ("The request ID, which identifies
  the request that triggered the function invocation"), ``Lambda-Runtime-Deadline-Ms``
  ("The date that the function times out in Unix time milliseconds"),
  ``Lambda-Runtime-Invoked-Function-Arn`` and ``Lambda-Runtime-Trace-Id``. "Do not set
  a timeout on the GET request as the response may be delayed": it blocks until an
  invocation is queued.
- **Invocation response**, ``POST /runtime/invocation/AwsRequestId/response``: the
  handler's result as the body; answered ``202 Accepted``.
- **Invocation error**, ``POST /runtime/invocation/AwsRequestId/error``: a JSON body
  ``{"errorMessage", "errorType", "stackTrace"}`` and the header
  ``Lambda-Runtime-Function-Error-Type``; answered ``202``.
- **Initialization error**, ``POST /runtime/init/error``: same body, ``202``.

A response or error for a request id that is not the one handed out is answered
``400`` (the documented "Bad Request"), so a client that mixed them up would fail here.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"


@dataclass
class Outcome:
    """What the runtime reported for one invocation."""

    request_id: str  # the Lambda-Runtime-Aws-Request-Id handed out
    kind: str  # "response" or "error"
    body: dict | list | str | None  # the JSON the runtime posted
    headers: dict = field(default_factory=dict)  # the request headers it posted with


class RuntimeAPI:
    """The Runtime API of one execution environment: :meth:`invoke` queues an event and
    waits for the runtime to post its outcome."""

    def __init__(self, function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:ephemera-test") -> None:
        self.function_arn = function_arn
        self.pending: queue.Queue[tuple[str, bytes, int]] = queue.Queue()
        self.outcomes: dict[str, queue.Queue[Outcome]] = {}
        self.current: str | None = None
        self.init_errors: list[dict] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, in order
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _reply(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                api.requests.append(("GET", self.path))
                if self.path != f"{PREFIX}/invocation/next":
                    return self._reply(404, b'{"errorType":"NotFound"}')
                request_id, body, deadline = api.pending.get()
                api.current = request_id
                self._reply(
                    200,
                    body,
                    {
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": str(deadline),
                        "Lambda-Runtime-Invoked-Function-Arn": api.function_arn,
                        "Lambda-Runtime-Trace-Id": "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
                    },
                )

            def do_POST(self) -> None:
                api.requests.append(("POST", self.path))
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                if self.path == f"{PREFIX}/init/error":
                    api.init_errors.append({"body": body, "type": self.headers.get("Lambda-Runtime-Function-Error-Type")})
                    return self._reply(202, b'{"status":"OK"}')
                parts = self.path[len(PREFIX) :].strip("/").split("/")
                if len(parts) != 3 or parts[0] != "invocation" or parts[2] not in ("response", "error"):
                    return self._reply(404, b'{"errorType":"NotFound"}')
                if parts[1] != api.current or parts[1] not in api.outcomes:
                    return self._reply(400, b'{"errorType":"InvalidRequestID"}')
                api.current = None
                api.outcomes[parts[1]].put(Outcome(parts[1], parts[2], body, dict(self.headers)))
                self._reply(202, b'{"status":"OK"}')

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        """The value of ``AWS_LAMBDA_RUNTIME_API``: host:port."""
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def invoke(self, event, *, timeout_seconds: float = 60.0, wait: float = 120.0) -> Outcome:
        """Queue ``event`` (JSON-encoded as Lambda does) and wait for the runtime's outcome."""
        request_id = str(uuid.uuid4())
        self.outcomes[request_id] = queue.Queue()
        deadline = int((time.time() + timeout_seconds) * 1000)
        self.pending.put((request_id, json.dumps(event).encode(), deadline))
        return self.outcomes[request_id].get(timeout=wait)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
