"""A Code Engine function endpoint on 127.0.0.1: HTTP in, ``main(args)`` called the way
the functions service calls it, HTTP out.

The internal request data interface (IBM Cloud docs, "Exchanging data with functions"):

- ``__ce_method``, ``__ce_path``, ``__ce_query`` (the raw query string, without ``?``),
  ``__ce_headers`` ("The key-value pair is converted into a canonical format ... both
  ``mykey`` or ``MYKEY`` are converted to ``Mykey``") and ``__ce_body`` (the body text);
- for ``application/json`` (also assumed when ``Content-Type`` is missing) "the keys and
  values of the JSON document as dedicated top-level property parameters", and query
  parameters as top-level properties too; invalid JSON is answered 400;
- "The internal ``__ce_*`` parameters cannot be overwritten with request data ... HTTP
  calls trying to overwrite fails with status code 400";
- the result's ``statusCode``, ``headers`` and ``body`` (an object is sent as JSON)
  become the HTTP response.

Every request is recorded (method, path, headers) so tests can see what a client sent.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qsl, urlsplit


def canonical(name: str) -> str:
    """A header name in canonical form: ``x-request-id`` -> ``X-Request-Id``."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


class FunctionServer:
    """Serves ``main`` (e.g. ``code_engine_main``) at ``url`` until ``close``."""

    def __init__(self, main: Callable[[dict], dict]):
        self.main = main
        self.requests: list[dict] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, body: object, headers: dict | None = None) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for key, value in (headers or {"Content-Type": "application/json"}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                headers: dict[str, str] = {}
                for key, value in self.headers.items():
                    headers.setdefault(canonical(key), value)
                server.requests.append({"method": self.command, "path": self.path, "headers": dict(headers)})
                text = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                args: dict = dict(parse_qsl(parts.query, keep_blank_values=True))
                if text:
                    if (headers.get("Content-Type") or "application/json").startswith("application/json"):
                        try:
                            body = json.loads(text)
                        except ValueError:
                            return self._send(400, {"error": "invalid JSON"})
                        if isinstance(body, dict):
                            args.update(body)
                    if any(k.startswith("__ce_") for k in args):
                        return self._send(400, {"error": "__ce_ parameters are reserved"})
                    args["__ce_body"] = text
                elif any(k.startswith("__ce_") for k in args):
                    return self._send(400, {"error": "__ce_ parameters are reserved"})
                args.update(__ce_method=self.command, __ce_path=parts.path, __ce_query=parts.query, __ce_headers=headers)
                result = server.main(args)
                body = result.get("body")
                self._send(
                    int(result.get("statusCode", 200)),
                    body if isinstance(body, (dict, list)) else str(body or "").encode(),
                    result.get("headers"),
                )

            do_GET = do_POST = _handle

        return Handler
