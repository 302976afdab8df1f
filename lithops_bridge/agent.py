"""The agent that runs on each VM of a run (locally: one detached process per "VM").

    python -m lithops_bridge.agent start --config AGENT_JSON --worker I --pid-file P --log-file L
    python -m lithops_bridge.agent stop --pid-file P [--timeout S]

``start`` launches the agent detached (its own session, its own log), returns once
the agent has written its pid file, and fails with the log tail if it dies first.
The agent heartbeats to the state bucket, runs the job on worker 0 in a child
process, writes a failure marker if that child dies without one, kills it at the
hard deadline, and then idles (a VM lives until it is destroyed) until SIGTERM.
Every agent (worker 0 included) also serves the run's standalone bridge jobs
(lithops_bridge.backends.standalone.server): the workload child gets a
``LITHOPS_CONFIG`` naming the standalone backend for this run, so a plain
``FunctionExecutor()`` in the workload spreads its calls over every VM of the run.
``stop`` is the destroy side: quiet and fast when the agent is already gone; SIGTERM
to the agent alone (it stops its task pool itself, so no call is reported as a
crashed worker), SIGKILL to its whole process group after the timeout or for any
straggler once it is gone, and it confirms the process is gone before returning.

The agent config file (written by the engine, mode 0600) is JSON:
``{"run_id", "config": <Ephemera config dict>, "heartbeat_interval": s}`` and,
optionally, ``"worker_processes"`` (processes serving bridge calls on this VM;
default the CPU count, divided by the run's VM count when storage is localhost, as
local VMs share one machine) and ``"use_gpu"`` (default: whether an NVIDIA device exists).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger("lithops_bridge.agent")


# --- agent config -----------------------------------------------------------------
def load_agent_config(path: str) -> dict:
    with open(path) as fh:
        return json.load(fh)


def _context(agent_cfg: dict):
    """(Config, Storage, JobSpec, Scrubber) of the agent's run."""
    from ephemera.config import load_config
    from ephemera.jobs import load_job
    from ephemera.secrets import Scrubber
    from ephemera.storage import get_storage

    config = load_config(agent_cfg["config"])
    storage = get_storage(config)
    job = load_job(storage, config.state_bucket, agent_cfg["run_id"])
    return config, storage, job, Scrubber(config.secret_values())


# --- pid files ----------------------------------------------------------------------
def write_pid_file(path: str, pid: int) -> None:
    tmp = f"{path}.tmp"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "w") as fh:
        fh.write(str(pid))
    os.replace(tmp, path)


def read_pid(path: str) -> int | None:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def is_agent_process(pid: int) -> bool:
    """True if ``pid`` is alive and is an agent (guards against pid reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True  # no /proc: trust the pid
    if b"lithops_bridge.agent" not in cmdline:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is gone
    except (OSError, IndexError):
        return True


# --- start / stop ---------------------------------------------------------------------
def start(args: argparse.Namespace) -> int:
    """Launch the agent detached; wait until it writes its pid file."""
    Path(args.log_file).parent.mkdir(parents=True, exist_ok=True)
    try:
        os.unlink(args.pid_file)
    except FileNotFoundError:
        pass
    cmd = [sys.executable, "-m", "lithops_bridge.agent", "serve", "--config", args.config,
           "--worker", str(args.worker), "--pid-file", args.pid_file]
    with open(args.log_file, "ab") as logfh:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logfh, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if read_pid(args.pid_file) == proc.pid:
            print(f"agent worker {args.worker} started, pid {proc.pid}")
            return 0
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    tail = _tail(args.log_file)
    print(f"agent worker {args.worker} failed to start (exit {proc.poll()}):\n{tail}", file=sys.stderr)
    return 1


def stop(args: argparse.Namespace) -> int:
    """Stop the agent of a pid file; confirm it is gone. Already gone: quiet success."""
    pid = read_pid(args.pid_file)
    if pid is None or not is_agent_process(pid):
        _remove(args.pid_file)
        print(f"agent of {args.pid_file}: already gone")
        return 0
    try:
        os.kill(pid, signal.SIGTERM)  # the agent alone: it stops its pool before its workers die
    except ProcessLookupError:
        pass
    if not _wait_gone(pid, args.timeout):
        _signal_group(pid, signal.SIGKILL)
        if not _wait_gone(pid, 5.0):
            print(f"agent pid {pid} did not exit after SIGKILL", file=sys.stderr)
            return 1
    _signal_group(pid, signal.SIGKILL, fallback=False)  # stragglers of its session (the agent leads it)
    _remove(args.pid_file)
    print(f"agent pid {pid} stopped")
    return 0


def _signal_group(pid: int, sig: int, fallback: bool = True) -> None:
    """Signal the agent's process group; with ``fallback`` the pid alone if there is no such group."""
    try:
        os.killpg(pid, sig)  # the agent leads its own session: take its children too
    except (ProcessLookupError, PermissionError):
        if fallback:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_agent_process(pid):
            return True
        time.sleep(0.02)
    return not is_agent_process(pid)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _tail(path: str, n: int = 30) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


# --- the agent itself -------------------------------------------------------------------
class Agent:
    def __init__(self, config_path: str, worker: int):
        self.config_path = config_path
        self.worker = worker
        self.agent_cfg = load_agent_config(config_path)
        self.run_id = self.agent_cfg["run_id"]
        self.config, self.storage, self.job, self.scrubber = _context(self.agent_cfg)
        self.stopping = threading.Event()
        self.state = "starting"
        self.child: subprocess.Popen | None = None
        self.worker_processes = self._default_processes()
        self.server = None  # the standalone TaskServer, once started

    def heartbeat(self) -> None:
        from ephemera import layout

        body = {"run_id": self.run_id, "worker": self.worker, "pid": os.getpid(), "state": self.state,
                "worker_processes": self.worker_processes, "pool_ready": bool(self.server and self.server.ready),
                "at": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
        try:
            self.storage.put(self.config.state_bucket, layout.heartbeat_key(self.run_id, self.worker), json.dumps(body).encode())
        except Exception as exc:  # noqa: BLE001 - a missed heartbeat must not kill the VM
            log.warning("heartbeat failed: %s", self.scrubber.scrub(str(exc)))

    def _heartbeat_loop(self) -> None:
        interval = float(self.agent_cfg.get("heartbeat_interval", 5.0))
        while not self.stopping.wait(interval):
            self.heartbeat()

    def seconds_left(self) -> float | None:
        if not self.job.hard_deadline:
            return None
        deadline = datetime.fromisoformat(self.job.hard_deadline)
        return (deadline - datetime.now(timezone.utc)).total_seconds()

    def run_workload(self) -> None:
        """Run the job in a child process; guarantee a marker unless we are being stopped."""
        self.state = "running"
        self.heartbeat()
        cmd = [sys.executable, "-m", "lithops_bridge.agent", "run-job", "--config", self.config_path, "--worker", str(self.worker)]
        self.child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, env=self.workload_env())
        left = self.seconds_left()
        try:
            code = self.child.wait(timeout=None if left is None else max(left, 0))
            reason = f"workload process exited with code {code} without writing a marker"
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait()
            code, reason = None, "workload killed at the run's hard deadline"
        if self.stopping.is_set():
            return
        if code != 0 or not self._marker_exists():
            self._write_failure(reason)
        self.state = "idle"
        self.heartbeat()

    # --- the standalone bridge backend on this VM ---------------------------------------
    def _default_processes(self) -> int:
        """Configured, else the CPU count; local VMs (localhost storage: one machine) share it."""
        if self.agent_cfg.get("worker_processes"):
            return int(self.agent_cfg["worker_processes"])
        cpus = os.cpu_count() or 1
        if self.storage.backend == "localhost":
            return max(1, cpus // max(1, int(self.job.worker_count or 1)))
        return cpus

    def use_gpu(self) -> bool:
        if "use_gpu" in self.agent_cfg:
            return bool(self.agent_cfg["use_gpu"])
        return os.path.exists("/dev/nvidia0")

    def bridge_config(self, compute: str) -> dict:
        """The Lithops config of this run: ``standalone`` (all its VMs) or ``localhost``."""
        from lithops_bridge.storage.config import from_ephemera

        storage = from_ephemera(self.config)
        name = storage["backend"]
        cfg = {"lithops": {"backend": compute, "storage": name}, name: storage[name]}
        if compute == "standalone":
            sa = {"exec_mode": "consume", "run_id": self.run_id, "worker_processes": self.worker_processes,
                  "use_gpu": self.use_gpu()}
            left = self.seconds_left()
            if left is not None and left > 0:
                sa["hard_dismantle_timeout"] = round(left, 3)
            cfg["standalone"] = sa
        else:
            cfg["localhost"] = {**cfg.get("localhost", {}), "worker_processes": self.worker_processes}
        return cfg

    def workload_env(self) -> dict:
        env = dict(os.environ)
        env["LITHOPS_CONFIG"] = json.dumps(self.bridge_config("standalone"))
        return env

    def start_server(self) -> None:
        """Serve the run's standalone jobs; the pool warms up in the background."""
        from lithops_bridge.backends.standalone.server import TaskServer

        task_env = {"LITHOPS_CONFIG": json.dumps(self.bridge_config("localhost")), "LITHOPS_BRIDGE_WORKER": "1"}
        self.server = TaskServer(self.storage, self.config.state_bucket, self.run_id, self.worker, self.worker_processes,
                                 task_env, cloud=self.storage.backend != "localhost").start()
        threading.Thread(target=self._warm_up, name="warm-up", daemon=True).start()

    def _warm_up(self) -> None:
        try:
            self.server.warm_up()
        except Exception as exc:  # noqa: BLE001 - the pool is retried on the first batch
            log.warning("warming up the task pool failed: %s", self.scrubber.scrub(str(exc)))
            return
        self.heartbeat()  # tells LocalRun.wait_ready (and anyone watching) the pool is warm

    def _marker_exists(self) -> bool:
        from ephemera.errors import NoSuchKeyError

        for success in (True, False):
            try:
                self.storage.head(self.job.output_bucket, self.job.marker_key(success))
                return True
            except NoSuchKeyError:
                continue
        return False

    def _write_failure(self, reason: str) -> None:
        if self._marker_exists():
            return
        log.error("run %s: %s", self.run_id, reason)
        marker = {"run_id": self.run_id, "status": "failed", "error": {"type": "AgentError", "message": reason},
                  "finished_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
        self.storage.put(self.job.output_bucket, self.job.marker_key(False), json.dumps(marker, indent=1).encode())

    def serve(self, pid_file: str) -> int:
        def on_term(signum, frame):  # noqa: ARG001
            self.stopping.set()
            if self.child and self.child.poll() is None:
                self.child.terminate()

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        write_pid_file(pid_file, os.getpid())
        log.info("agent for run %s worker %d up, pid %d", self.run_id, self.worker, os.getpid())
        self.heartbeat()
        threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True).start()
        self.start_server()
        if self.worker == 0:
            threading.Thread(target=self.run_workload, name="workload", daemon=True).start()
        else:
            self.state = "idle"
        # A VM lives until destroyed; as a second line of defence it ends itself at the
        # hard deadline even if nobody destroys it.
        while not self.stopping.wait(0.5):
            left = self.seconds_left()
            if left is not None and left <= 0:
                log.error("run %s: hard deadline passed; agent exits", self.run_id)
                break
        self.stopping.set()
        if self.server is not None:
            self.server.stop()
        if self.child and self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(5)
            except subprocess.TimeoutExpired:
                self.child.kill()
        self.state = "stopped"
        self.heartbeat()
        log.info("agent for run %s worker %d stopped", self.run_id, self.worker)
        return 0


def run_job_main(args: argparse.Namespace) -> int:
    from ephemera.jobs import run_job
    from ephemera.secrets import install_scrubber

    agent_cfg = load_agent_config(args.config)
    config, storage, job, scrubber = _context(agent_cfg)
    install_scrubber(scrubber)
    marker = run_job(job, storage, worker=args.worker, scrubber=scrubber)
    return 0 if marker["status"] == "succeeded" else 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lithops_bridge.agent", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("start", help="start a detached agent")
    p.add_argument("--config", required=True)
    p.add_argument("--worker", type=int, default=0)
    p.add_argument("--pid-file", required=True)
    p.add_argument("--log-file", required=True)
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the agent to come up")
    p = sub.add_parser("stop", help="stop an agent and confirm it is gone")
    p.add_argument("--pid-file", required=True)
    p.add_argument("--timeout", type=float, default=10.0)
    p = sub.add_parser("serve", help="run the agent in the foreground")
    p.add_argument("--config", required=True)
    p.add_argument("--worker", type=int, default=0)
    p.add_argument("--pid-file", required=True)
    p = sub.add_parser("run-job", help="run the job once and write its marker")
    p.add_argument("--config", required=True)
    p.add_argument("--worker", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    if args.cmd == "start":
        return start(args)
    if args.cmd == "stop":
        return stop(args)
    if args.cmd == "serve":
        from ephemera.secrets import install_scrubber

        agent = Agent(args.config, args.worker)
        install_scrubber(agent.scrubber)
        return agent.serve(args.pid_file)
    return run_job_main(args)


if __name__ == "__main__":
    sys.exit(main())
