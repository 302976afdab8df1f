"""A run's "VMs" on this machine, for tests, the benchmark and trying the bridge.

``LocalRun(root, workers=2)`` writes a job spec for a fresh run id into localhost
storage under ``root`` (or the storage ``storage`` names, e.g. an S3 endpoint; with
no ``entry`` no workload runs: workers are numbered
from 1, as worker 0 is the one that runs a workload), starts one agent per VM with
``python -m ephemera.vm start``, and ``close()`` stops them with ``stop``, which
confirms each process is gone. ``lithops_config`` is the bridge config that sends
calls to those VMs; ``wait_ready()`` waits until every agent's pool is warm. The
job has a hard deadline (``hard_deadline`` seconds, default 10 minutes) at which the
agents end themselves, so a killed test or benchmark session leaks no process.
The run has its own random run key (``run_key``): the job spec is signed with it, the
agents get it in their config, and ``lithops_config`` carries it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

from ephemera.files import write_private
from ephemera.model.heartbeat import Heartbeat
from ephemera.model.vmboot import AgentConfig
from ephemera.timeutil import now_utc

DEFAULT_HARD_DEADLINE = 600.0  # seconds a LocalRun's agents live at most


class LocalRun:
    """N local agents serving one run's standalone jobs (over localhost storage unless ``storage`` says otherwise)."""

    def __init__(
        self,
        root: str | os.PathLike,
        workers: int = 2,
        worker_processes: int | None = None,
        bucket: str = "ephemera",
        heartbeat_interval: float = 1.0,
        run_id: str | None = None,
        entry: str | None = None,
        params: dict | None = None,
        hard_deadline: float | None = DEFAULT_HARD_DEADLINE,
        storage: dict | None = None,
        preemption: dict | None = None,
    ):
        self.root = Path(root)
        self.run_id = run_id or f"bench-{uuid.uuid4().hex[:8]}"
        self.run_key = secrets.token_hex(32)  # seals the run's bridge objects and signs its job spec
        self.entry = entry  # a workload for worker 0 to run (None: no workload, workers from 1)
        self.params = dict(params or {})
        self.workers = list(range(workers)) if entry else list(range(1, workers + 1))
        self.worker_processes = worker_processes
        self.heartbeat_interval = heartbeat_interval
        self.hard_deadline = hard_deadline  # seconds from start() until the agents end themselves (None: never)
        # the VMs' storage: localhost under root, or the Ephemera config sections in ``storage``
        # (e.g. {"storage": {"backend": "aws_s3", "bucket": ...}, "aws_s3": {...}}; its bucket wins)
        sections = (
            dict(storage)
            if storage
            else {"storage": {"backend": "localhost", "bucket": bucket}, "localhost": {"root": str(self.root / "storage")}}
        )
        self.bucket = sections["storage"]["bucket"]
        self.ephemera_config = {**sections, "home": str(self.root / "home")}
        self.agent_dir = self.root / "agents" / self.run_id
        self.preemption = preemption  # the agents' preemption notice source (ephemera.vm.preemption), None: none
        self.started: list[int] = []

    @property
    def lithops_config(self) -> dict:
        from ephemera.assembly import load_config
        from ephemera.storage.lithops import to_lithops

        sa: dict[str, object] = {"exec_mode": "consume", "run_id": self.run_id, "run_key": self.run_key}
        if self.worker_processes:
            sa["worker_processes"] = self.worker_processes
        storage = to_lithops(load_config(self.ephemera_config))
        name = storage["backend"]
        return {"lithops": {"backend": "standalone", "storage": name}, "standalone": sa, name: storage[name]}

    def pid_file(self, worker: int) -> str:
        return str(self.agent_dir / f"agent-{worker}.pid")

    def log_file(self, worker: int) -> str:
        return str(self.agent_dir / f"agent-{worker}.log")

    def start(self) -> "LocalRun":
        from ephemera.assembly import load_config
        from ephemera.layout import output_prefix
        from ephemera.model.jobs import JobSpec, save_job
        from ephemera.storage import get_storage

        config = load_config(self.ephemera_config)
        storage = get_storage(config)
        storage.create_bucket(self.bucket)
        spec = JobSpec(
            run_id=self.run_id,
            workspace="local",
            entry=self.entry or "ephemera.workloads.none:main",
            params=self.params,
            state_bucket=self.bucket,
            output_bucket=self.bucket,
            output_prefix=output_prefix("outputs", self.run_id),
            worker_count=max(self.workers) + 1,
            hard_deadline=self._deadline(),
        )
        save_job(storage, self.bucket, spec, self.run_key)
        self.agent_dir.mkdir(parents=True, exist_ok=True)
        cfg_path = self.agent_dir / "agent.json"
        agent_cfg = AgentConfig(
            run_id=self.run_id,
            config=self.ephemera_config,
            heartbeat_interval=self.heartbeat_interval,
            run_key=self.run_key,
            worker_processes=self.worker_processes or None,
            preemption=self.preemption,
        )
        write_private(cfg_path, agent_cfg.to_json())
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]),
        }
        try:
            for w in self.workers:
                cmd = [
                    sys.executable,
                    "-m",
                    "ephemera.vm",
                    "start",
                    "--config",
                    str(cfg_path),
                    "--worker",
                    str(w),
                    "--pid-file",
                    self.pid_file(w),
                    "--log-file",
                    self.log_file(w),
                ]
                subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
                self.started.append(w)
        except subprocess.CalledProcessError as exc:
            self.close()
            raise RuntimeError(f"agent failed to start: {exc.stderr.strip()}") from None
        return self

    def _deadline(self) -> str:
        if not self.hard_deadline:
            return ""
        return (now_utc() + timedelta(seconds=float(self.hard_deadline))).isoformat()

    def heartbeats(self) -> dict[int, Heartbeat]:
        """worker -> its agent's last heartbeat."""
        from ephemera.assembly import load_config
        from ephemera.storage import get_storage
        from ephemera.vm.heartbeats import read_heartbeats

        beats = read_heartbeats(get_storage(load_config(self.ephemera_config)), self.bucket, self.run_id)
        return {b.worker: b for b in beats if b.worker in self.workers}

    def wait_ready(self, timeout: float = 60.0) -> "LocalRun":
        """Wait until every agent heartbeats with a warm pool; RuntimeError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            beats = self.heartbeats()
            if all(w in beats and beats[w].services.get("pool_ready") for w in self.workers):
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"agents of run {self.run_id} not ready after {timeout:g} s; logs in {self.agent_dir}")
            time.sleep(0.05)

    def close(self) -> None:
        for w in list(self.started):
            subprocess.run(
                [sys.executable, "-m", "ephemera.vm", "stop", "--pid-file", self.pid_file(w)], capture_output=True, text=True
            )
            self.started.remove(w)

    def pids(self) -> list[int]:
        from ephemera.vm.pids import read_pid

        return [p for p in (read_pid(self.pid_file(w)) for w in self.workers) if p]

    def __enter__(self) -> "LocalRun":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
