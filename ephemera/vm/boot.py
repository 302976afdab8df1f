"""A VM's bootstrap, second stage, in the bundle's environment: storage access, the GPU proof, the agent.

``python -m ephemera.vm boot --boot FILE --root DIR`` runs after
:mod:`ephemera.vm.bootstrap` has installed the bundle. It

1. builds the agent's config, ``<root>/agent.json`` (mode 0600): the storage section
   of the boot document, plus the keys stage one read from the one-time credentials
   object into ``<root>/credentials.json`` (the file is removed once they are in
   ``agent.json``) when the VM has no identity of its own; a VM that reboots reuses
   the file;
2. proves the GPUs the profile promises (:mod:`ephemera.vm.gpu`): a driver that is not
   loaded yet gets one reboot (``reboot`` in the boot document; the bootstrap resumes
   after it), anything else is a failure; stamps ``driver_ready`` with the GPU model,
   driver and CUDA versions;
3. heartbeats once with the phases so far and hands over to the agent
   (``python -m ephemera.vm serve``) in the same process.

Any failure writes the run's failure marker with the reason and the bootstrap log's
tail, so the run is destroyed within minutes instead of idling until its deadline, and
ships the bootstrap's log with the run's logs (once storage is reachable).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import traceback
from pathlib import Path

from ephemera.files import write_private
from ephemera.model import marker as markers
from ephemera.model.heartbeat import Heartbeat, VMPhase, VMState
from ephemera.model.vmboot import AgentConfig, BootDocument, boot_from_json
from ephemera.storage.base import Storage
from ephemera.vm import bootstrap
from ephemera.vm.gpu import GPUCheckError, check_gpus
from ephemera.vm.preemption import watch_config

log = logging.getLogger("ephemera.vm.boot")
AGENT_CONFIG = "agent.json"


def vm_credentials(boot: BootDocument, root: Path) -> dict:
    """The storage keys stage one fetched (``<root>/credentials.json``); {} for a VM with an identity."""
    if not boot.get("credentials"):
        return {}
    path = bootstrap.fetch_credentials(root, boot)  # normally done by stage one already: then it only reads the file
    if path is None:
        return {}
    keys = json.loads(path.read_text())
    return keys if isinstance(keys, dict) else {}


def vm_config(boot: BootDocument, root: Path) -> dict:
    """The VM's Ephemera config: the storage section, completed by the run's credentials."""
    name = boot["storage"]["backend"]
    section = {**dict(boot["storage"].get(name) or {}), **vm_credentials(boot, root)}
    return {"storage": {"backend": name, "bucket": boot["state_bucket"]}, name: section, "home": str(root / "home")}


def agent_config(boot: BootDocument, root: Path) -> Path:
    """``<root>/agent.json``, written once (credentials can be read only once)."""
    path = root / AGENT_CONFIG
    if not path.exists():
        bundle_dir = root / "bundle" / boot["bundle"]["sha256"]
        cfg = AgentConfig(
            run_id=boot["run_id"],
            config=vm_config(boot, root),
            state_file=str(root / bootstrap.STATE),
            heartbeat_interval=float(boot.get("heartbeat_interval") or 5.0),
            workdir=str(bundle_dir / "source"),
            use_gpu=int((boot.get("gpu") or {}).get("count") or 0) > 0,
            run_key=boot.get("run_key") or "",  # checks the job spec, seals the bridge's objects
            preemption=watch_config(dict(boot)),
        )
        write_private(path, cfg.to_json())
    (root / bootstrap.CREDENTIALS).unlink(missing_ok=True)  # one copy of the keys: agent.json's
    return path


def _write_failure(boot: BootDocument, state: bootstrap.State, root: Path, storage: Storage | None, exc: BaseException) -> None:
    message = f"worker {boot['worker']}: {getattr(exc, 'message', None) or f'{type(exc).__name__}: {exc}'}"
    bootstrap.log(root, f"boot failed: {message}")
    if storage is None:  # no storage access: the bootstrap's own way (presigned PUT or identity)
        bootstrap.write_failure(boot, state, root, exc)
        return
    marker = markers.failure(
        boot["run_id"],
        boot.get("entry", ""),
        "BootstrapError",
        message,
        traceback=traceback.format_exc(),
        log_tail=bootstrap.log_tail(root),
    )
    marker.boot = {"worker": boot["worker"], "phases": state.data["phases"], "reboots": state.data.get("reboots", 0)}
    output = boot["marker"]
    if not markers.exists(storage, output["bucket"], output["key"].rpartition("/")[0] + "/"):
        storage.put(output["bucket"], output["key"], marker.to_json())


def boot_vm(boot_file: Path, root: Path, pid_file: str | None = None) -> list[str] | int:
    """Stage two; the agent's command line, or the exit code: 0 when the VM reboots, 1 on failure."""
    from ephemera.secrets import install_scrubber
    from ephemera.vm.agent import agent_context, load_agent_config
    from ephemera.vm.heartbeats import write_heartbeat

    boot = boot_from_json(boot_file.read_text())
    state = bootstrap.State(root)
    storage: Storage | None = None
    scrubber = None
    try:
        path = agent_config(boot, root)
        config, storage, _job, scrubber = agent_context(load_agent_config(str(path)))
        install_scrubber(scrubber)
        gpu = boot.get("gpu") or {}
        try:
            report = check_gpus(int(gpu.get("count") or 0), gpu.get("model"))
        except GPUCheckError as exc:
            if not (exc.needs_reboot and boot.get("reboot") and state.data.get("reboots", 0) == 0):
                raise
            state.data["reboots"] = 1
            state.phase(VMPhase.REBOOTING.value)
            bootstrap.log(root, f"{exc.message}: rebooting once to load the driver")
            write_heartbeat(
                storage,
                config.state_bucket,
                Heartbeat(run_id=boot["run_id"], worker=boot["worker"], state=VMState.REBOOTING, phases=state.data["phases"]),
            )
            subprocess.run(boot["reboot"], check=False)
            return 0
        state.phase(VMPhase.DRIVER_READY.value, gpu=report.to_dict() if report else None)
        bootstrap.log(root, f"GPUs: {report.to_dict() if report else 'none promised'}")
        write_heartbeat(
            storage,
            config.state_bucket,
            Heartbeat(
                run_id=boot["run_id"],
                worker=boot["worker"],
                pid=os.getpid(),
                state=VMState.BOOTING,
                phases=state.data["phases"],
                gpu=state.data.get("gpu"),
            ),
        )
    except Exception as exc:  # noqa: BLE001 - every failure ends the run with a marker
        try:
            _write_failure(boot, state, root, storage, exc)
        except Exception as marker_exc:  # noqa: BLE001 - the reaper's boot timeout is the last resort
            bootstrap.log(root, f"could not write the failure marker: {type(marker_exc).__name__}: {marker_exc}")
        if (
            storage is not None and scrubber is not None
        ):  # no agent will ship the bootstrap's log: ship it now, so it outlives the VM
            from ephemera.vm.logship import LogShipper

            shipper = LogShipper(storage, boot["state_bucket"], boot["run_id"], boot["worker"], scrubber)
            shipper.tail_file("boot", root / bootstrap.LOG)
            shipper.flush(final=True)
        return 1
    pid_file = pid_file or boot.get("agent_pid_file") or str(root / "agent.pid")
    return [
        sys.executable,
        "-m",
        "ephemera.vm",
        "serve",
        "--config",
        str(path),
        "--worker",
        str(boot["worker"]),
        "--pid-file",
        pid_file,
    ]


def main(boot_file: str, root: str, pid_file: str | None = None) -> int:
    from ephemera.vm.logship import log_to_stdout

    log_to_stdout()
    cmd = boot_vm(Path(boot_file).resolve(), Path(root), pid_file)
    if isinstance(cmd, int):
        return cmd
    sys.stdout.flush()
    os.execv(cmd[0], cmd)
    return 0  # not reached
