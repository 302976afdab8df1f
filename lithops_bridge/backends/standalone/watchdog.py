"""The hard timeout of the standalone server: a batch running longer than its job's
``hard_dismantle_timeout`` is killed with the VM's worker pool. Its calls fail with
TimeoutError; the other batches killed with it fail with BridgeError and are not run
again (a call never runs twice on a live VM).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from lithops_bridge.backends.standalone.results import failure_outcomes
from lithops_bridge.errors import BridgeError


class Watchdog:
    """The hard timeout of :class:`~lithops_bridge.backends.standalone.server.TaskServer`'s batches."""

    worker: int  # this VM's worker index
    _inflight_lock: threading.Lock  # guards _inflight
    _inflight: dict[tuple[str, int], dict]  # (job_key, batch) -> {started, future, batch, limit, job, slot}

    def _kill_pool(self) -> None: ...  # the server's: kills the pool's processes

    def _complete(self, jk: str, b: int, outcomes: Any) -> None: ...  # the server's: writes the batch's outcomes

    def _watchdog(self) -> None:
        """Kill the pool under a batch that outlived the job's hard_dismantle_timeout."""
        now = time.monotonic()
        with self._inflight_lock:
            items = list(self._inflight.items())
            late = [(k, e) for k, e in items if e.get("limit") and now - e["started"] > e["limit"]]
            if not late:
                return
            for _k, entry in items:
                entry["future"] = None  # detach: the dying pool's callbacks are ignored
        late_keys = {k for k, _e in late}
        self._kill_pool()
        for (jk, b), entry in late:
            limit = entry["limit"]
            self._complete(
                jk,
                b,
                failure_outcomes(
                    entry["batch"].call_ids,
                    TimeoutError(
                        f"hard_dismantle_timeout of {limit:g} seconds exceeded on VM {self.worker}: the calls were killed"
                    ),
                ),
            )
        culprit = ", ".join(sorted({jk for jk, _b in late_keys}))
        for (jk, b), entry in items:
            if (jk, b) in late_keys:
                continue
            ids = entry["batch"].call_ids
            self._complete(
                jk,
                b,
                failure_outcomes(
                    ids,
                    BridgeError(
                        f"calls {ids[0]}-{ids[-1]} of job {jk} were killed on VM {self.worker} with the worker pool, when "
                        f"job {culprit} exceeded its hard_dismantle_timeout; they are not run again, so that no call runs twice"
                    ),
                ),
            )
