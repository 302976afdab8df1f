"""A local S3 endpoint for tests: moto's ThreadedMotoServer on 127.0.0.1, free port.

Two additions around moto's WSGI app, both in front of it (moto itself is unchanged):

- **Request log.** Pass ``request_log=[]`` and every request is appended as an
  :class:`S3Request` (method, path, query, headers), so a test can check what a client
  really sent, e.g. ``Authorization: Bearer <token>`` from the IBM COS SDK.
- **Atomic writes.** Real S3 evaluates ``If-None-Match: *`` atomically; moto checks
  for the key and then writes in two steps, so two concurrent conditional PUTs can
  both succeed. Object writes (PUT/POST/DELETE) are therefore serialized here;
  reads stay concurrent.
- ``reject_conditional_put=True`` answers a PUT carrying ``If-None-Match`` with
  ``501 NotImplemented``, like an S3-compatible store without conditional writes.

moto keeps its state in process-wide backends: two servers started here share
buckets, so tests use unique bucket names.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

_NOT_IMPLEMENTED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NotImplemented</Code>'
    b"<Message>A header you provided implies functionality that is not implemented</Message>"
    b"<Header>If-None-Match</Header><RequestId>fake</RequestId></Error>"
)


@dataclass(frozen=True)
class S3Request:
    """One request the fake S3 endpoint received."""

    method: str  # HTTP method
    path: str  # URL path, e.g. /bucket/key
    query: str  # raw query string
    headers: dict[str, str]  # request headers, names as WSGI reports them (e.g. "Authorization")


class _FrontMiddleware:
    """Records requests, serializes writes, optionally refuses conditional PUTs."""

    def __init__(self, app, request_log: list | None, reject_conditional_put: bool):
        self.app = app
        self.request_log = request_log
        self.reject_conditional_put = reject_conditional_put
        self.write_lock = threading.Lock()
        self.log_lock = threading.Lock()

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET")
        if self.request_log is not None:
            headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
            if environ.get("CONTENT_TYPE"):
                headers["Content-Type"] = environ["CONTENT_TYPE"]
            with self.log_lock:
                self.request_log.append(S3Request(method, environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""), headers))
        if self.reject_conditional_put and method == "PUT" and environ.get("HTTP_IF_NONE_MATCH"):
            start_response(
                "501 Not Implemented", [("Content-Type", "application/xml"), ("Content-Length", str(len(_NOT_IMPLEMENTED)))]
            )
            return [_NOT_IMPLEMENTED]
        if method in ("PUT", "POST", "DELETE"):
            with self.write_lock:
                # consume the whole response while holding the lock: moto may work lazily
                response = self.app(environ, start_response)
                try:
                    return [b"".join(response)]
                finally:
                    if hasattr(response, "close"):
                        response.close()
        return self.app(environ, start_response)


class _Server(ThreadedMotoServer):
    def __init__(self, request_log: list | None, reject_conditional_put: bool):
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        self._request_log = request_log
        self._reject = reject_conditional_put

    def _server_entry(self) -> None:
        app = _FrontMiddleware(DomainDispatcherApplication(create_backend_app), self._request_log, self._reject)
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()


def start_s3_server(request_log: list | None = None, reject_conditional_put: bool = False) -> tuple[str, Callable[[], None]]:
    """Start a moto S3 server on 127.0.0.1:<free port>; returns (endpoint_url, stop)."""
    server = _Server(request_log, reject_conditional_put)
    server.start()
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}", server.stop


def seed_objects(bucket: str, keys: list[str], body: bytes = b"") -> None:
    """Write ``keys`` into ``bucket`` straight into moto's process-wide S3 backend, without
    an HTTP round trip each: setup for tests about reading many objects (a thousand PUTs
    through the server take ~20 s; this takes well under one)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    backend.get_bucket(bucket)  # raises if the bucket is not this backend's: the seed must land where the test reads
    for key in keys:
        backend.put_object(bucket, key, body)
