"""Keeping ibm-cloud-sdk-core's DEBUG switch from reaching every HTTP client of the process.

When its logger is enabled for DEBUG, ``ibm_cloud_sdk_core.BaseService.__init__`` sets
``http.client.HTTPConnection.debuglevel = 1`` and replaces ``http.client.print`` with
``lambda *args: logger.debug(... " ".join(args))``, for the whole process. http.client
then calls ``print("headers:", skipped_headers)`` with a *list* after a ``100 Continue``
reply, which ibm-cos-sdk asks for on every PutObject: the join raises ``TypeError`` in
the COS client and every later COS write fails. It would also dump every request's
headers and body (state records, bundles) into the log. The SDK's own DEBUG records
(requests, responses, retries) stay; only the wire dump goes.
"""

from __future__ import annotations

import http.client
from contextlib import contextmanager
from typing import Iterator

_MISSING = object()


@contextmanager
def sdk_http_debug_contained() -> Iterator[None]:
    """Build an SDK service inside this: http.client's debug level and its ``print`` are
    put back as they were before, whatever the SDK's constructor changed."""
    level = http.client.HTTPConnection.debuglevel
    printer = vars(http.client).get("print", _MISSING)
    try:
        yield
    finally:
        http.client.HTTPConnection.debuglevel = level
        if printer is _MISSING:
            vars(http.client).pop("print", None)
        else:
            http.client.print = printer  # type: ignore[attr-defined]
