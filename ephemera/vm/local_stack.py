"""The local stack's hooks: this machine plays the cloud.

The ``local`` stack's VMs are processes here. For an apply, each VM's boot document
(``vm_boot``, decoded) is completed with what a VM on this machine needs -- its root
folder, the controller's interpreter and site-packages to reuse, an offline install,
the GPUs it must prove, where its preemption notice appears (:mod:`ephemera.vm.local_preempt`
simulates spot preemption) -- and written 0600 to ``<runs>/<run_id>/vms/<worker>/boot.json``
(the local stand-in for cloud-init's user_data); the agents' pid files and logs go to
``<runs>/<run_id>/agents/``; the run folder names its workspace (``workspace``).

A live agent in a run folder of the workspace that the state does not name (an apply
killed before it saved its state) is one of the workspace's resources,
``orphan_agent:<run_id>/<pid file>:<pid>``; destroy stops it. After a destroy, what the
VMs wrote is deleted: their agent configs and credentials files (storage keys), their
environments and unpacked bundles.

The stack's ``terraform_data`` VMs start with ``python -m ephemera.vm.local_stack start``,
which runs the VM bootstrap in its own session, its output to the VM's log, and
returns once the bootstrap has written its pid file.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from ephemera.files import write_private
from ephemera.model.vmboot import boot_from_json, boot_to_json
from ephemera.stack.hooks import StackHooks, VMAddress
from ephemera.stack.spec import StackSpec
from ephemera.vm.control import stop_agent
from ephemera.vm.local_preempt import NOTICE_FILE, reset_local_vm
from ephemera.vm.local_preemptions import LocalPreemptionView
from ephemera.vm.pids import is_agent_process, read_pid

RUN_WORKSPACE_FILE = "workspace"  # in a run's folder: the name of its workspace
STOP_TIMEOUT = 10.0  # seconds an orphan agent is given to stop
START_TIMEOUT = 30.0  # seconds a detached bootstrap is given to write its pid file


def host_site_packages() -> list[str]:
    """The site-packages of this interpreter, which local VMs reuse for heavy dependencies."""
    paths = sysconfig.get_paths()
    return sorted({paths["purelib"], paths["platlib"]})


def run_dirs(runs_dir: Path, workspace: str) -> list[Path]:
    """Folders of the runs applied in this workspace (each names its workspace)."""
    if not runs_dir.is_dir():
        return []
    found = []
    for run_dir in sorted(runs_dir.iterdir()):
        try:
            if (run_dir / RUN_WORKSPACE_FILE).read_text().strip() == workspace:
                found.append(run_dir)
        except OSError:
            continue
    return found


def known_pid_files(state: dict) -> set[str]:
    """The pid files the state's ``terraform_data`` VMs name (their ``input``)."""
    known = set()
    for res in state.get("resources", []):
        for inst in res.get("instances", []):
            value = (inst.get("attributes") or {}).get("input")
            value = value.get("value", value) if isinstance(value, dict) else value  # terraform_data wraps it
            pid_file = value.get("pid_file") if isinstance(value, dict) else None
            if pid_file:
                known.add(str(pid_file))
    return known


def orphan_agents(runs_dir: Path, workspace: str, state: dict) -> list[tuple[Path, int]]:
    """(pid file, pid) of each live agent of the workspace's runs that the state does not name."""
    known = known_pid_files(state)
    found = []
    for run_dir in run_dirs(runs_dir, workspace):
        for path in sorted((run_dir / "agents").glob("*.pid")):
            pid = read_pid(str(path))
            if str(path) not in known and pid and is_agent_process(pid):
                found.append((path, pid))
    return found


class LocalStack(LocalPreemptionView, StackHooks):
    """Hooks of the ``local`` stack (``terraform/local/stack.toml``)."""

    def engine_variables(self, spec: StackSpec, runs_dir: Path, workspace: str, run_id: str, values: dict) -> dict:
        run_dir = runs_dir / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        boot_dir = run_dir / "vms"
        # written 0600: the run key is their one secret
        for doc in (boot_from_json(base64.b64decode(b)) for b in values.get("vm_boot") or []):
            root = boot_dir / str(doc["worker"])
            doc.update(
                {
                    "root": str(root),
                    "python": sys.executable,
                    "inherit_site": host_site_packages(),
                    "offline": True,
                    "gpu": {"count": int(values.get("gpu_count") or 0), "model": values.get("gpu_model")},
                    "preemption": {"source": "local", "notice_file": str(root / NOTICE_FILE)},
                }
            )
            reset_local_vm(runs_dir, run_id, doc["worker"])  # a re-applied (recovered) VM starts without the old notice
            write_private(root / "boot.json", boot_to_json(doc))
        (run_dir / RUN_WORKSPACE_FILE).write_text(workspace)
        return {"python": sys.executable, "boot_dir": str(boot_dir), "agent_dir": str(run_dir / "agents")}

    def plan_variables(self, spec: StackSpec, scratch: Path) -> dict:
        return {"python": sys.executable, "boot_dir": str(scratch / "vms"), "agent_dir": str(scratch / "agents")}

    def orphan_resources(self, runs_dir: Path, workspace: str, state: dict) -> list[str]:
        return [
            f"orphan_agent:{path.parent.parent.name}/{path.name}:{pid}" for path, pid in orphan_agents(runs_dir, workspace, state)
        ]

    def stop_orphans(self, runs_dir: Path, workspace: str, state: dict) -> list[str]:
        done = []
        for path, pid in orphan_agents(runs_dir, workspace, state):
            stopped = stop_agent(str(path), timeout=STOP_TIMEOUT)
            done.append(
                f"orphan agent pid {pid} ({path.parent.parent.name}/{path.name}) not in the state: "
                f"{'stopped' if stopped else 'did not stop'}"
            )
        return done

    def cleanup(self, runs_dir: Path, workspace: str) -> None:
        for run_dir in run_dirs(runs_dir, workspace):
            for vm in sorted((run_dir / "vms").glob("*")):
                (vm / "agent.json").unlink(missing_ok=True)
                (vm / "credentials.json").unlink(missing_ok=True)  # a VM stopped between its bootstrap's stages
                for folder in ("env", "bundle", "wheelhouse", "home"):
                    shutil.rmtree(vm / folder, ignore_errors=True)

    def lithops_backend(self, spec: StackSpec, config, vm: VMAddress, engine_region: str | None = None) -> tuple[str, dict]:
        """Lithops' ``vm`` backend reaches a "VM" over SSH to this machine."""
        return "vm", {"ip_address": "127.0.0.1", "ssh_username": getpass.getuser()}


def start(boot_file: str, pid_file: str, log_file: str, timeout: float = START_TIMEOUT) -> int:
    """Start a local VM's bootstrap in its own session and return once it has its pid file."""
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    Path(pid_file).unlink(missing_ok=True)
    with open(log_file, "ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ephemera.vm.bootstrap", "--boot", boot_file, "--pid-file", pid_file],
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Path(pid_file).is_file() and Path(pid_file).read_text().strip() == str(proc.pid):
            print(f"VM bootstrap started, pid {proc.pid}")
            return 0
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    print(f"VM bootstrap did not start (exit {proc.poll()}); see {log_file}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ephemera.vm.local_stack", description="Start a local VM (the local stack).")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("start", help="run the VM bootstrap in the background")
    cmd.add_argument("--boot", required=True, help="the VM's boot document (JSON)")
    cmd.add_argument("--pid-file", required=True, help="written by the bootstrap (the VM's process, from bootstrap to agent)")
    cmd.add_argument("--log-file", required=True, help="the VM's output")
    args = parser.parse_args(argv)
    return start(args.boot, args.pid_file, args.log_file)


if __name__ == "__main__":
    sys.exit(main())
