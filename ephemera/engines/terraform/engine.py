"""The ``terraform`` engine: applies a workspace's stack on this machine.

Each workspace has a working directory ``<home>/workspaces/<name>/`` holding a copy of
the stack, its variables (``ephemera.auto.tfvars.json``, mode 0600), its local state,
and ``ephemera.owner.json``, the run id it was last applied for. Apply and destroy run
synchronously, so the activity they return is already COMPLETED or FAILED. Outputs
and resource ids are read from the state file.

Stacks that declare the variables ``python``, ``boot_dir`` and ``agent_dir`` (the
``local`` stack) get the interpreter that runs the VM bootstrap, a folder with each
VM's boot document (``vm_boot`` decoded, completed with what a local VM needs: its
root folder, the controller's site-packages to reuse and an offline install) and the
folder for the VMs' pid files and logs, all in the run's own folder
``<home>/runs/<run_id>/`` (which also names its workspace, in ``workspace``). The
agent config a VM writes holds its storage keys: destroy deletes it, with the VM's
environment.

A live agent in a run folder of the workspace that the state does not name (an apply
killed before it saved its state) is one of the workspace's resources,
``orphan_agent:<run_id>/<pid file>:<pid>``; destroy stops it. The engine is an
:class:`~ephemera.engines.base.OrphanSweeper`: its workspaces are its working
directories, a workspace's owner is the run id it was last applied for; and an
:class:`~ephemera.engines.base.ActivityLogs`: an activity's whole output is kept (in
memory, scrubbed) until the run's logs take it.

Apply and destroy of one workspace hold an exclusive ``flock`` on its
``ephemera.lock`` for their whole length (the kernel frees it when the holder dies);
a second one meanwhile raises :class:`WorkspaceBusyError`, as Schematics answers for
a locked workspace. So a destroy never inspects a state an apply is still writing.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import shutil
import sys
import sysconfig
import uuid
from pathlib import Path

from ephemera.config import Config
from ephemera.engines.plan import Plan, parse_plan
from ephemera.engines.terraform.config import TerraformEngineConfig, engine_config
from ephemera.engines.terraform.runners import Runner, make_runner
from ephemera.errors import EngineError, WorkspaceBusyError
from ephemera.files import write_private
from ephemera.model.runs import Activity
from ephemera.model.vmboot import boot_from_json, boot_to_json
from ephemera.secrets import Scrubber
from ephemera.timeutil import now_iso

TFVARS = "ephemera.auto.tfvars.json"
HOLD_FILE = "ephemera.lock"  # flock-ed by the apply or destroy under way in the workspace
OWNER_FILE = "ephemera.owner.json"  # {"run_id": ...}: the run the workspace was last applied for
RUN_WORKSPACE_FILE = "workspace"  # in a run's folder: the name of its workspace
LOG_TAIL_LINES = 40
_VARIABLE_RE = re.compile(r'^\s*variable\s+"([A-Za-z0-9_-]+)"', re.M)
_LOCK_MARKERS = ("Error acquiring the state lock",)


def host_site_packages() -> list[str]:
    """The site-packages of this interpreter, which local VMs reuse for heavy dependencies."""
    paths = sysconfig.get_paths()
    return sorted({paths["purelib"], paths["platlib"]})



def declared_variables(stack_dir: Path) -> set[str]:
    """The variable names a stack's ``.tf`` files declare."""
    names: set[str] = set()
    for tf in stack_dir.glob("*.tf"):
        names.update(_VARIABLE_RE.findall(tf.read_text()))
    return names


def local_vms(stack_dir: Path) -> bool:
    """The stack's VMs are processes on this machine: it declares ``boot_dir`` and ``agent_dir``."""
    return {"boot_dir", "agent_dir"} <= declared_variables(stack_dir)

class TerraformEngine:
    """:class:`~ephemera.engines.base.WorkspaceEngine` and ``OrphanSweeper`` on this machine."""

    name = "terraform"

    def __init__(self, config: Config, settings: TerraformEngineConfig, runner: Runner | None = None):
        self.config = config
        self.settings = settings
        self.runner = runner or make_runner(settings.binary)
        self.scrubber = Scrubber(config.secret_values())
        self._logs: dict[str, str] = {}  # activity id -> its whole output, until read once

    @classmethod
    def from_config(cls, config: Config) -> "TerraformEngine":
        return cls(config, engine_config(config))

    # paths ---------------------------------------------------------------------------
    def workdir(self, workspace: str) -> Path:
        return self.settings.workspaces_dir / workspace

    def run_dir(self, run_id: str) -> Path:
        return self.settings.runs_dir / run_id

    def declared_variables(self) -> set[str]:
        return declared_variables(self.settings.stack_dir)

    # WorkspaceEngine -------------------------------------------------------------------
    def apply(self, workspace: str, run_id: str, variables: dict, secure_variables: dict) -> Activity:
        with self._hold(workspace):
            return self._apply(workspace, run_id, variables, secure_variables)

    def _apply(self, workspace: str, run_id: str, variables: dict, secure_variables: dict) -> Activity:
        workdir = self.workdir(workspace)
        self._sync_stack(workdir)
        write_private(workdir / OWNER_FILE, json.dumps({"run_id": run_id}))
        values = {**variables, **secure_variables}
        values.update(self._local_variables(workspace, run_id, values))
        declared = self.declared_variables()
        write_private(workdir / TFVARS, json.dumps({k: v for k, v in values.items() if k in declared}, indent=1))
        activity = Activity(id=f"tf-{uuid.uuid4().hex[:12]}", kind="apply")
        if not (workdir / ".terraform").is_dir() or not (workdir / ".terraform.lock.hcl").exists():
            code, out = self.runner.run(workdir, "init")
            if code != 0:
                return self._finish(activity, code, out)
        code, out = self.runner.run(workdir, "apply")
        return self._finish(activity, code, out)

    def destroy(self, workspace: str) -> Activity:
        with self._hold(workspace):
            return self._destroy(workspace)

    def _destroy(self, workspace: str) -> Activity:
        activity = Activity(id=f"tf-{uuid.uuid4().hex[:12]}", kind="destroy")
        workdir = self.workdir(workspace)
        out = "nothing to destroy: the workspace state holds no resources"
        if self._state_resources(workspace):
            self._sync_stack(workdir)
            if not (workdir / ".terraform").is_dir():
                code, out = self.runner.run(workdir, "init")
                if code != 0:
                    return self._finish(activity, code, out)
            code, out = self.runner.run(workdir, "destroy")
            if code != 0:
                return self._finish(activity, code, out)
        swept = self._stop_orphan_agents(workspace)
        if swept:
            out += "\n" + "\n".join(swept)
        self._cleanup_run_files(workspace)
        return self._finish(activity, 0, out)

    def status(self, activity: Activity) -> Activity:
        return Activity(**vars(activity))  # local activities finish before apply/destroy return

    def plan(self, workspace: str, run_id: str, variables: dict, secure_variables: dict) -> Plan:
        """Plan in a scratch copy of the workspace (its state copied in, if any), removed
        afterwards: no VM starts, no file of the workspace or of a run is written."""
        scratch = self.settings.workspaces_dir.parent / "plans" / f"{workspace}-{uuid.uuid4().hex[:8]}"
        try:
            self._sync_stack(scratch)
            state = self.workdir(workspace) / "terraform.tfstate"
            if state.is_file():
                with self._hold(workspace):  # not a state an apply or destroy is writing (busy: try again later)
                    shutil.copy2(state, scratch / "terraform.tfstate")
            values = {**variables, **secure_variables}
            declared = self.declared_variables()
            if {"boot_dir", "agent_dir"} <= declared:  # the local stack: placeholders, nothing is booted by a plan
                values.update(python=sys.executable, boot_dir=str(scratch / "vms"), agent_dir=str(scratch / "agents"))
            write_private(scratch / TFVARS, json.dumps({k: v for k, v in values.items() if k in declared}, indent=1))
            code, out = self.runner.run(scratch, "init")
            if code == 0:
                code, out = self.runner.run(scratch, "plan")
            text = self.scrubber.scrub(out.strip())
            if code != 0:
                raise EngineError(f"terraform plan of workspace '{workspace}' failed (exit {code})",
                                  log_tail="\n".join(text.splitlines()[-LOG_TAIL_LINES:]))
            return parse_plan(text)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def activity_log(self, activity: Activity) -> str:
        """The whole Terraform output of an activity run by this engine object (read once)."""
        return self._logs.pop(activity.id, activity.log_tail)

    def outputs(self, workspace: str) -> dict:
        state = self._state(workspace)
        return {name: out.get("value") for name, out in state.get("outputs", {}).items() if not out.get("sensitive")}

    def resources(self, workspace: str) -> list[str]:
        """Resources in the workspace state, plus any live agent of the workspace's runs
        that the state does not name (started by an apply that died before saving its state)."""
        return self._state_resources(workspace) + [
            f"orphan_agent:{path.parent.parent.name}/{path.name}:{pid}" for path, pid in self._orphan_agents(workspace)
        ]

    # OrphanSweeper ---------------------------------------------------------------------
    def workspaces(self) -> list[str]:
        """Names of the workspaces this engine has a working directory for."""
        root = self.settings.workspaces_dir
        return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []

    def owner(self, workspace: str) -> str | None:
        """The run id the workspace was last applied for: its owner file, else (for a
        workspace applied by an older version) the run id in its variables."""
        workdir = self.workdir(workspace)
        for name in (OWNER_FILE, TFVARS):
            try:
                owner = json.loads((workdir / name).read_text()).get("run_id")
            except (OSError, ValueError, AttributeError):
                continue
            if owner:
                return str(owner)
        return None

    # the state and the agents ------------------------------------------------------------
    def _state(self, workspace: str) -> dict:
        path = self.workdir(workspace) / "terraform.tfstate"
        try:
            text = path.read_text()
        except FileNotFoundError:
            return {}
        if not text.strip():  # Terraform creates it empty when it takes the lock; killed before writing
            return {}
        try:
            return json.loads(text)
        except ValueError as exc:
            raise EngineError(f"state of workspace '{workspace}' is unreadable ({exc}); inspect {path}") from None

    def _state_resources(self, workspace: str) -> list[str]:
        ids = []
        for res in self._state(workspace).get("resources", []):
            if res.get("mode") != "managed":
                continue
            for inst in res.get("instances", []):
                ident = inst.get("attributes", {}).get("id")
                ids.append(f"{res['type']}.{res['name']}:{ident}")
        return ids

    def _run_dirs(self, workspace: str) -> list[Path]:
        """Folders of the runs applied in this workspace (each names its workspace)."""
        root = self.settings.runs_dir
        if not root.is_dir():
            return []
        found = []
        for run_dir in sorted(root.iterdir()):
            try:
                if (run_dir / RUN_WORKSPACE_FILE).read_text().strip() == workspace:
                    found.append(run_dir)
            except OSError:
                continue
        return found

    def _orphan_agents(self, workspace: str) -> list[tuple[Path, int]]:
        from ephemera.vm.pids import is_agent_process, read_pid

        known = set()
        for res in self._state(workspace).get("resources", []):
            for inst in res.get("instances", []):
                value = (inst.get("attributes") or {}).get("input")
                value = value.get("value", value) if isinstance(value, dict) else value  # terraform_data wraps it
                pid_file = value.get("pid_file") if isinstance(value, dict) else None
                if pid_file:
                    known.add(str(pid_file))
        found = []
        for run_dir in self._run_dirs(workspace):
            for path in sorted((run_dir / "agents").glob("*.pid")):
                pid = read_pid(str(path))
                if str(path) not in known and pid and is_agent_process(pid):
                    found.append((path, pid))
        return found

    def _stop_orphan_agents(self, workspace: str) -> list[str]:
        """Stop agents of the workspace's runs that no state names; confirm each is gone."""
        from ephemera.vm.control import stop_agent

        done = []
        for path, pid in self._orphan_agents(workspace):
            stopped = stop_agent(str(path), timeout=10.0)
            done.append(f"orphan agent pid {pid} ({path.parent.parent.name}/{path.name}) not in the state: "
                        f"{'stopped' if stopped else 'did not stop'}")
        return done

    # helpers -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _hold(self, workspace: str):
        """Hold the workspace for one apply or destroy; WorkspaceBusyError if another holds it."""
        workdir = self.workdir(workspace)
        workdir.mkdir(parents=True, exist_ok=True)
        fd = os.open(workdir / HOLD_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise WorkspaceBusyError(f"workspace '{workspace}' has an apply or destroy under way; try again later") from None
            yield
        finally:
            os.close(fd)  # closing frees the lock

    def _sync_stack(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        for old in workdir.glob("*.tf"):
            old.unlink()
        for src in self.settings.stack_dir.iterdir():
            if src.is_file() and not src.name.endswith((".tfstate", ".tfvars", ".tfvars.json")):
                shutil.copy2(src, workdir / src.name)
            elif src.is_dir() and not src.name.startswith("."):  # the stack's local modules (./modules/...)
                shutil.rmtree(workdir / src.name, ignore_errors=True)
                shutil.copytree(src, workdir / src.name)

    def _local_variables(self, workspace: str, run_id: str, values: dict) -> dict:
        declared = self.declared_variables()
        if not {"boot_dir", "agent_dir"} <= declared:
            return {}
        run_dir = self.run_dir(run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        boot_dir = run_dir / "vms"
        # The local stand-in for cloud-init user_data: each VM's boot document, completed
        # with what a VM on this machine needs (written 0600: the run key is their one secret).
        for doc in (boot_from_json(base64.b64decode(b)) for b in values.get("vm_boot") or []):
            root = boot_dir / str(doc["worker"])
            doc.update({"root": str(root), "python": sys.executable, "inherit_site": host_site_packages(), "offline": True,
                        "gpu": {"count": int(values.get("gpu_count") or 0), "model": values.get("gpu_model")}})
            write_private(root / "boot.json", boot_to_json(doc))
        (run_dir / RUN_WORKSPACE_FILE).write_text(workspace)
        return {"python": sys.executable, "boot_dir": str(boot_dir), "agent_dir": str(run_dir / "agents")}

    def _cleanup_run_files(self, workspace: str) -> None:
        """Delete what the VMs of the workspace's runs wrote and no VM is left to use: their
        agent configs (they hold storage keys), environments and unpacked bundles."""
        for run_dir in self._run_dirs(workspace):
            for vm in sorted((run_dir / "vms").glob("*")):
                (vm / "agent.json").unlink(missing_ok=True)
                (vm / "credentials.json").unlink(missing_ok=True)  # a VM stopped between its bootstrap's stages
                for folder in ("env", "bundle", "wheelhouse", "home"):
                    shutil.rmtree(vm / folder, ignore_errors=True)

    def _finish(self, activity: Activity, code: int, output: str) -> Activity:
        self._logs[activity.id] = self.scrubber.scrub(output.strip())
        tail = self.scrubber.scrub("\n".join(output.strip().splitlines()[-LOG_TAIL_LINES:]))
        if code != 0 and any(marker in output for marker in _LOCK_MARKERS):
            raise WorkspaceBusyError("the workspace state is locked by another Terraform run; try again later", log_tail=tail)
        return Activity(id=activity.id, kind=activity.kind, state="COMPLETED" if code == 0 else "FAILED",
                        started_at=activity.started_at, finished_at=now_iso(), log_tail=tail)
