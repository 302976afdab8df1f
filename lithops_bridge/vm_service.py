"""The bridge's service on every VM of an Ephemera run (entry point ``ephemera.vm_services``).

Ephemera's agent starts it on each VM. It runs the standalone :class:`TaskServer`
(claims and runs the run's bridge jobs), writes the server's presence object
(``lithops.jobs/<run_id>/servers/<worker>.json``: alive, processes, pool warm, the
write interval and start time) every few seconds so clients know which VMs take
calls and other VMs know when to take over a silent VM's calls, and gives the workload a
``LITHOPS_CONFIG`` naming the standalone backend for this run (with the run key, so
its jobs are sealed: see ``backends.standalone.seal``), so a plain
``FunctionExecutor()`` spreads its calls over every VM of the run.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import datetime, timezone

from typing import TYPE_CHECKING

from lithops_bridge import constants as c
from lithops_bridge.backends.standalone import keys
from lithops_bridge.threads import thread_caps

if TYPE_CHECKING:  # imported when the service starts (the agent loads every service at start)
    from lithops_bridge.backends.standalone.server import TaskServer

log = logging.getLogger("lithops_bridge.vm_service")
PRESENCE_INTERVAL = 5.0  # seconds between presence writes (well under the client's STALE_AFTER)
LOCAL_PRESENCE_INTERVAL = 1.0  # on local VMs: storage is a folder, writes are free


class BridgeService:
    """:class:`ephemera.vm.services.VMService` serving the run's standalone bridge jobs."""

    name = "lithops-bridge"

    def __init__(self, vm) -> None:
        self.vm = vm  # ephemera.vm.services.VMInfo
        self.server: TaskServer | None = None  # once started
        self.interval = LOCAL_PRESENCE_INTERVAL if vm.same_host else PRESENCE_INTERVAL
        self._stop = threading.Event()
        self._state = "starting"
        self._started = datetime.now(timezone.utc).isoformat()  # claims older than this are not this server's

    # --- Lithops configs of this run ------------------------------------------------------
    def bridge_config(self, compute: str) -> dict:
        """The Lithops config of this run: ``standalone`` (all its VMs) or ``localhost`` (this VM)."""
        storage = self.vm.lithops_storage
        name = storage["backend"]
        # cloud objects go under the run's own prefix: a VM's storage rights cover no shared one
        cfg = {
            "lithops": {"backend": compute, "storage": name, "temp_prefix": f"{c.JOBS_PREFIX}/{self.vm.run_id}/tmp"},
            name: dict(storage[name]),
        }
        if compute == c.STANDALONE:
            sa = {
                "exec_mode": "consume",
                "run_id": self.vm.run_id,
                "run_key": self.vm.run_key,
                "worker_processes": self.vm.worker_processes,
                "use_gpu": self.vm.use_gpu,
            }
            if self.vm.hard_deadline is not None:
                left = (self.vm.hard_deadline - datetime.now(timezone.utc)).total_seconds()
                if left > 0:
                    sa["hard_dismantle_timeout"] = round(left, 3)
            cfg["standalone"] = sa
        else:
            cfg[c.LOCALHOST] = {**cfg.get(c.LOCALHOST, {}), "worker_processes": self.vm.worker_processes}
        return cfg

    def workload_env(self) -> dict[str, str]:
        # a local VM's driver shares the machine with the other VMs: its numeric threads get the VM's share
        caps = thread_caps(1, cpus=self.vm.worker_processes) if self.vm.same_host else {}
        return {**caps, "LITHOPS_CONFIG": json.dumps(self.bridge_config(c.STANDALONE))}

    # --- serving ----------------------------------------------------------------------------
    def start(self) -> None:
        from lithops_bridge.backends.standalone.server import TaskServer

        task_env = {
            "LITHOPS_CONFIG": json.dumps(self.bridge_config(c.LOCALHOST)),
            "LITHOPS_BRIDGE_WORKER": "1",
            "LITHOPS_BRIDGE_VM": f"vm-{self.vm.worker}",
        }  # which VM a call runs on, for the function itself
        self.server = TaskServer(
            self.vm.storage,
            self.vm.state_bucket,
            self.vm.run_id,
            self.vm.worker,
            self.vm.worker_processes,
            task_env,
            self.vm.run_key,
            cloud=not self.vm.same_host,
        )
        self._state = "serving"
        self._write_presence()  # before the first claim: every claimer has a presence others can watch
        self.server.start()
        threading.Thread(target=self._presence_loop, name="bridge-presence", daemon=True).start()
        threading.Thread(target=self._warm_up, name="bridge-warm-up", daemon=True).start()

    def _warm_up(self) -> None:
        server = self.server
        if server is None:  # stopped before it warmed up
            return
        try:
            server.warm_up()
        except Exception as exc:  # noqa: BLE001 - the pool is retried on the first batch
            log.warning("warming up the task pool failed: %s: %s", type(exc).__name__, exc)
            return
        self._write_presence()  # clients (and LocalRun.wait_ready) learn at once that the pool is warm
        if self.vm.request_heartbeat is not None:
            self.vm.request_heartbeat()

    def status(self) -> dict:
        return {"pool_ready": bool(self.server and self.server.ready)}

    def _presence_loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._write_presence()

    def _write_presence(self) -> None:
        body = {
            "worker": self.vm.worker,
            "pid": os.getpid(),
            "state": self._state,
            "interval": self.interval,
            "started": self._started,
            "worker_processes": self.vm.worker_processes,
            **self.status(),
            "at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        }
        try:
            self.vm.storage.put(self.vm.state_bucket, keys.server_key(self.vm.run_id, self.vm.worker), json.dumps(body).encode())
        except Exception as exc:  # noqa: BLE001 - a missed write must not stop serving
            log.warning("presence write failed: %s: %s", type(exc).__name__, exc)

    def stop(self) -> None:
        self._stop.set()
        if self.server is not None:
            self.server.stop()
        self._state = "stopped"
        self._write_presence()
