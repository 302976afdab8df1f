"""The agent that runs on each VM of a run (locally: one detached process per "VM").

The agent heartbeats to the state bucket, starts the VM services other packages
register (:mod:`ephemera.vm.services`; the Lithops bridge serves the run's
standalone jobs there, so a plain ``FunctionExecutor()`` in the workload spreads its
calls over every VM of the run), runs the job on worker 0 in a child process, writes
a failure marker if that child dies without one, kills it at the hard deadline, and
then idles (a VM lives until it is destroyed) until SIGTERM.

The agent config file (``agent.json``, mode 0600, written by the VM's boot or by
``LocalRun``) is a :class:`ephemera.model.vmboot.AgentConfig`: the run, the VM's
Ephemera config, the run's key (:mod:`ephemera.runkeys`: the agent checks the run's
job spec with it before anything of it runs, and the bridge seals what the VMs
unpickle; a secret, scrubbed from every log line like the config's secrets), the
heartbeat and log intervals, the processes serving calls, whether to use the GPU and,
on a booted VM, the bootstrap's state file (its boot phases and GPU report, carried in
every heartbeat with the agent's own phases) and the workload's working folder.

On a spot VM the agent watches the platform's preemption notice
(:mod:`ephemera.vm.preemption`). On the notice it writes a ``preempted`` heartbeat at once
(state and phase ``preempted``, the ``preemption`` field), hands the notice to the
workload over a pipe (``ctx.preempted``, ``ctx.on_preempt``), ships its logs, and writes
no failure marker when the workload then dies with the VM: a preemption is an event, not
a failure, and the controller recovers the run.

The agent ships its own log, the workload's output (read from its pipe, and echoed to
the agent's stdout) and the bootstrap's log (beside the state file) to the state
bucket every few seconds and when it stops (:mod:`ephemera.vm.logship`).
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime

from ephemera.assembly import load_config
from ephemera.config import Config
from ephemera.lifeline import child_binding
from ephemera.model import marker as markers
from ephemera.model.heartbeat import PREEMPTION_FIELD, Heartbeat, VMPhase, VMState
from ephemera.model.jobs import JobSpec, load_job
from ephemera.model.vmboot import AgentConfig
from ephemera.secrets import Scrubber, StreamScrubber
from ephemera.storage import get_storage
from ephemera.storage.base import Storage
from ephemera.storage.lithops import to_lithops
from ephemera.timeutil import now_iso, now_utc
from ephemera.vm.heartbeats import write_heartbeat
from ephemera.vm.logship import SHIP_INTERVAL, LogShipper
from ephemera.vm.pids import write_pid_file
from ephemera.vm.preemption import NOTICE_FD_ENV, PreemptionWatcher, notice_source
from ephemera.vm.services import VMInfo, VMService, load_services
from ephemera.vm.workload import write_marker

log = logging.getLogger("ephemera.vm.agent")
RELAY_LINE_BYTES = 64 * 1024  # a longer output line is relayed in pieces


def load_agent_config(path: str) -> AgentConfig:
    """The agent config at ``path``; AgentConfigError naming a missing or malformed field."""
    with open(path) as fh:
        return AgentConfig.from_json(fh.read())


def agent_context(agent_cfg: AgentConfig) -> tuple[Config, Storage, JobSpec, Scrubber]:
    """(Config, Storage, JobSpec, Scrubber) of the agent's run; JobSpecError when the
    run's job spec is not signed with the run key."""
    config = load_config(agent_cfg.config, engine_checks=False)  # a VM never drives the engine
    storage = get_storage(config)
    job = load_job(storage, config.state_bucket, agent_cfg.run_id, agent_cfg.run_key)
    return config, storage, job, Scrubber([*config.secret_values(), agent_cfg.run_key])


class Agent:
    def __init__(self, config_path: str, worker: int):
        self.config_path = config_path
        self.worker = worker
        self.agent_cfg = load_agent_config(config_path)
        self.run_id = self.agent_cfg.run_id
        self.config, self.storage, self.job, self.scrubber = agent_context(self.agent_cfg)
        self.stopping = threading.Event()
        self.state: VMState = VMState.STARTING
        self.child: subprocess.Popen | None = None
        self.worker_processes = self._default_processes()
        self.services: list[VMService] = []
        self.phases: dict[str, str] = {}  # the agent's own boot phases, over the bootstrap's
        self.preemption: dict | None = None  # the platform's preemption notice, once received
        self.watcher: PreemptionWatcher | None = None
        self._notice_fd: int | None = None  # the agent's end of the workload's notice pipe
        self._notice_lock = threading.Lock()
        self.shipper = LogShipper(
            self.storage,
            self.config.state_bucket,
            self.run_id,
            worker,
            self.scrubber,
            float(self.agent_cfg.log_interval or SHIP_INTERVAL),
        )

    # --- heartbeats -------------------------------------------------------------------
    def boot_state(self) -> dict:
        """The bootstrap's state file (phases, GPU report), {} without one."""
        if not self.agent_cfg.state_file:
            return {}
        try:
            with open(self.agent_cfg.state_file) as fh:
                state = json.load(fh)
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def phase(self, name: VMPhase) -> None:
        self.phases.setdefault(name.value, now_iso())

    def heartbeat(self) -> None:
        boot = self.boot_state()
        beat = Heartbeat(
            run_id=self.run_id,
            worker=self.worker,
            pid=os.getpid(),
            state=VMState.PREEMPTED if self.preemption is not None else self.state,  # its last word, whatever runs on
            worker_processes=self.worker_processes,
            python=sys.executable,
            phases={**(boot.get("phases") or {}), **self.phases},
            gpu=boot.get("gpu") or None,
        )
        for service in self.services:
            try:
                beat.services.update(service.status())
            except Exception as exc:  # noqa: BLE001 - a service's status must not stop the beat
                log.warning("VM service %s: status failed: %s", service.name, self.scrubber.scrub(str(exc)))
        if self.preemption is not None:
            beat.services[PREEMPTION_FIELD] = dict(self.preemption)
        try:
            write_heartbeat(self.storage, self.config.state_bucket, beat)
        except Exception as exc:  # noqa: BLE001 - a missed heartbeat must not kill the VM
            log.warning("heartbeat failed: %s", self.scrubber.scrub(str(exc)))

    def _heartbeat_loop(self) -> None:
        interval = float(self.agent_cfg.heartbeat_interval)
        while not self.stopping.wait(interval):
            self.heartbeat()

    def hard_deadline(self) -> datetime | None:
        return datetime.fromisoformat(self.job.hard_deadline) if self.job.hard_deadline else None

    def seconds_left(self) -> float | None:
        deadline = self.hard_deadline()
        return None if deadline is None else (deadline - now_utc()).total_seconds()

    # --- preemption -------------------------------------------------------------------
    def start_watcher(self) -> None:
        """Watch the preemption notice source the agent config names (none: nothing to watch)."""
        try:
            source = notice_source(self.agent_cfg.preemption)
        except ValueError as exc:
            log.error("no preemption watch: %s", exc)
            return
        if source is not None:
            self.watcher = PreemptionWatcher(source, self.on_preempted)
            self.watcher.start()
            log.info("watching for %s preemption notices", source.source)

    def on_preempted(self, notice: dict) -> None:
        """The platform reclaims this VM: say so in a heartbeat first (the grace is short),
        then tell the workload and ship the logs."""
        self.preemption = {k: notice[k] for k in ("notice_at", "source", "action", "time") if k in notice}
        self.phases.setdefault(VMPhase.PREEMPTED.value, notice["notice_at"])
        self.state = VMState.PREEMPTED
        self.heartbeat()
        log.warning("run %s worker %d: preemption notice (%s, %s)", self.run_id, self.worker, notice["source"], notice["action"])
        self._tell_workload()
        self.shipper.flush()

    def _tell_workload(self) -> None:
        with self._notice_lock:
            if self._notice_fd is None or self.preemption is None:
                return
            try:
                os.write(self._notice_fd, json.dumps(self.preemption).encode() + b"\n")
            except OSError as exc:  # the workload has ended
                log.info("preemption notice not handed to the workload: %s", exc)

    def _close_notice_pipe(self) -> None:
        with self._notice_lock:
            if self._notice_fd is not None:
                os.close(self._notice_fd)
                self._notice_fd = None

    # --- resources of this VM ---------------------------------------------------------
    def _default_processes(self) -> int:
        """Configured, else the CPU count; local VMs (one machine) share it."""
        if self.agent_cfg.worker_processes:
            return int(self.agent_cfg.worker_processes)
        cpus = os.cpu_count() or 1
        if self.storage.traits.same_host:
            return max(1, cpus // max(1, int(self.job.worker_count or 1)))
        return cpus

    def use_gpu(self) -> bool:
        if self.agent_cfg.use_gpu is not None:
            return bool(self.agent_cfg.use_gpu)
        return os.path.exists("/dev/nvidia0")

    def vm_info(self) -> VMInfo:
        return VMInfo(
            run_id=self.run_id,
            worker=self.worker,
            worker_count=int(self.job.worker_count or 1),
            storage=self.storage,
            state_bucket=self.config.state_bucket,
            worker_processes=self.worker_processes,
            use_gpu=self.use_gpu(),
            hard_deadline=self.hard_deadline(),
            same_host=self.storage.traits.same_host,
            lithops_storage=to_lithops(self.config),
            request_heartbeat=self.heartbeat,
            run_key=self.agent_cfg.run_key,
        )

    def start_services(self) -> None:
        for service in load_services(self.vm_info()):
            try:
                service.start()
            except Exception as exc:  # noqa: BLE001 - the workload may still run without it
                log.error("VM service %s failed to start: %s", service.name, self.scrubber.scrub(str(exc)))
                continue
            self.services.append(service)
            log.info("VM service %s started", service.name)

    def stop_services(self) -> None:
        for service in reversed(self.services):
            try:
                service.stop()
            except Exception as exc:  # noqa: BLE001 - stop the others too
                log.warning("VM service %s failed to stop: %s", service.name, self.scrubber.scrub(str(exc)))

    def workload_env(self) -> dict:
        env = dict(os.environ)
        for service in self.services:
            env.update(service.workload_env())
        return env

    # --- the workload -------------------------------------------------------------------
    def run_workload(self) -> None:
        """Run the job in a child process; guarantee a marker unless we are being stopped."""
        self.state = VMState.RUNNING
        self.phase(VMPhase.FIRST_TASK)
        self.heartbeat()
        cmd = [sys.executable, "-m", "ephemera.vm", "run-job", "--config", self.config_path, "--worker", str(self.worker)]
        started = time.time()
        workdir = self.agent_cfg.workdir
        env, lifeline = child_binding(self.workload_env())  # the workload (and this agent's group) dies with the agent
        notice_read, self._notice_fd = os.pipe()
        env[NOTICE_FD_ENV] = str(notice_read)
        self.child = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            env=env,
            pass_fds=(*lifeline, notice_read),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=workdir if workdir and os.path.isdir(workdir) else None,
        )
        os.close(notice_read)
        self._tell_workload()  # a notice that came while the workload started
        reader = threading.Thread(target=self._relay, args=(self.child.stdout,), name="workload-output", daemon=True)
        reader.start()
        left = self.seconds_left()
        error_type = "AgentError"
        try:
            code = self.child.wait(timeout=None if left is None else max(left, 0))
            reason = f"workload process exited with code {code} without writing a marker"
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait()
            code, reason = None, "workload killed at the run's hard deadline"
            error_type = markers.HARD_DEADLINE_TYPE  # the run TIMED_OUT: it did not fail by itself
        reader.join(timeout=5)
        self._close_notice_pipe()
        if self.stopping.is_set() or self.preemption is not None:
            return  # stopped, or going down with the VM: not a failure of the workload
        if code != 0 or not self._marker_exists():
            self._write_failure(reason, started, error_type)
        self.phase(VMPhase.LAST_TASK)
        self.state = VMState.IDLE
        self.heartbeat()

    def _relay(self, stream) -> None:
        """The workload's output (prints, its subprocesses' writes), scrubbed (it passed
        through no logging filter; a long line arrives in pieces, and a secret cut between
        two is masked too): copied into the agent's log (the VM's) and shipped with the
        run's logs."""
        out = sys.stdout.buffer
        decoder = codecs.getincrementaldecoder("utf-8")("replace")  # a piece may end inside a character
        scrubbed = StreamScrubber(self.scrubber)

        def emit(text: str) -> None:
            if not text:
                return
            self.shipper.add("workload", text)
            try:
                out.write(text.encode())
                out.flush()
            except (OSError, ValueError):
                pass

        for raw in iter(lambda: stream.readline(RELAY_LINE_BYTES), b""):
            emit(scrubbed.feed(decoder.decode(raw)))
        emit(scrubbed.feed(decoder.decode(b"", final=True)) + scrubbed.flush())
        stream.close()

    def _marker_exists(self) -> bool:
        return markers.exists(self.storage, self.job.output_bucket, self.job.output_prefix)

    def _write_failure(self, reason: str, started: float, error_type: str = "AgentError") -> None:
        if self._marker_exists():
            return
        log.error("run %s: %s", self.run_id, reason)
        marker = markers.failure(self.run_id, self.job.entry, error_type, reason, started=started)
        write_marker(self.storage, self.job, self.scrubber.scrub_obj(marker))

    # --- the agent's life ---------------------------------------------------------------
    def serve(self, pid_file: str) -> int:
        def on_term(signum, frame):  # noqa: ARG001
            self.stopping.set()
            if self.child and self.child.poll() is None:
                self.child.terminate()

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        handler = self.shipper.handler("agent")
        handler.addFilter(self.scrubber)
        logging.getLogger().addHandler(handler)
        if self.agent_cfg.state_file:  # a booted VM: the bootstrap's log beside its state
            from ephemera.vm.bootstrap import LOG

            self.shipper.tail_file("boot", os.path.join(os.path.dirname(self.agent_cfg.state_file), LOG))
        self.shipper.start()
        self.heartbeat()
        threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True).start()
        self.start_watcher()
        self.start_services()
        # the pid file says "up": written once the services serve, so whoever started
        # this agent can hand it work as soon as start returns
        write_pid_file(pid_file, os.getpid())
        self.phase(VMPhase.AGENT_READY)
        self.heartbeat()
        log.info("agent for run %s worker %d up, pid %d", self.run_id, self.worker, os.getpid())
        if self.worker == 0:
            threading.Thread(target=self.run_workload, name="workload", daemon=True).start()
        else:
            self.state = VMState.IDLE
        # A VM lives until destroyed; as a second line of defence it ends itself at the
        # hard deadline even if nobody destroys it.
        while not self.stopping.wait(0.5):
            left = self.seconds_left()
            if left is not None and left <= 0:
                log.error("run %s: hard deadline passed; agent exits", self.run_id)
                break
        self.stopping.set()
        if self.watcher is not None:
            self.watcher.stop()
        self.stop_services()
        if self.child and self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(5)
            except subprocess.TimeoutExpired:
                self.child.kill()
        if self.preemption is None:  # a preempted VM's last word stays "preempted"
            self.state = VMState.STOPPED
        self.heartbeat()
        log.info("agent for run %s worker %d stopped", self.run_id, self.worker)
        self.shipper.stop()
        logging.getLogger().removeHandler(handler)
        return 0
