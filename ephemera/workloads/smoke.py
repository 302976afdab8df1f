"""A minimal workload for checking the plumbing: writes one output and returns.

Parameters: ``message`` (written to ``hello.txt``), ``sleep`` (seconds to wait
first), ``fail`` (raise instead of succeeding).
"""

from __future__ import annotations

import time


def main(ctx) -> dict:
    params = ctx.params
    time.sleep(float(params.get("sleep", 0)))
    if params.get("fail"):
        raise RuntimeError("smoke workload failing on purpose")
    key = ctx.put_output("hello.txt", str(params.get("message", "hello from ephemera")))
    return {"written": key, "worker": ctx.worker}
