"""The ``terraform`` engine: applies a run's stack on this machine.

Each workspace has a working directory ``<home>/workspaces/<name>/`` holding a copy of
the stack, its variables (``ephemera.auto.tfvars.json``, mode 0600) and its local
state. Apply and destroy run synchronously, so the activity they return is already
COMPLETED or FAILED. Outputs and resource ids are read from the state file.

Stacks that declare the variables ``python``, ``agent_config`` and ``agent_dir``
(the ``local`` stack) get the interpreter that runs the agent, the path of the
agent's config file (written here, mode 0600, deleted after destroy) and the folder
for its pid files and logs.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import uuid
from pathlib import Path

from ephemera.config import Config
from ephemera.engines.terraform.config import TerraformEngineConfig, engine_config
from ephemera.engines.terraform.runners import Runner, make_runner
from ephemera.errors import EngineError, WorkspaceBusyError
from ephemera.files import write_private
from ephemera.model.runs import Activity, RunRecord
from ephemera.timeutil import now_iso
from ephemera.secrets import Scrubber

TFVARS = "ephemera.auto.tfvars.json"
LOG_TAIL_LINES = 40
_VARIABLE_RE = re.compile(r'^\s*variable\s+"([A-Za-z0-9_-]+)"', re.M)
_LOCK_MARKERS = ("Error acquiring the state lock",)


class TerraformEngine:
    name = "terraform"

    def __init__(self, config: Config, settings: TerraformEngineConfig, runner: Runner | None = None):
        self.config = config
        self.settings = settings
        self.runner = runner or make_runner(settings.binary)
        self.scrubber = Scrubber(config.secret_values())

    @classmethod
    def from_config(cls, config: Config) -> "TerraformEngine":
        return cls(config, engine_config(config))

    # paths ---------------------------------------------------------------------------
    def workdir(self, run: RunRecord) -> Path:
        return self.settings.workspaces_dir / run.workspace

    def run_dir(self, run: RunRecord) -> Path:
        return self.settings.runs_dir / run.run_id

    def declared_variables(self) -> set[str]:
        names: set[str] = set()
        for tf in self.settings.stack_dir.glob("*.tf"):
            names.update(_VARIABLE_RE.findall(tf.read_text()))
        return names

    # interface -------------------------------------------------------------------------
    def apply(self, run: RunRecord, variables: dict, secure_variables: dict) -> Activity:
        workdir = self.workdir(run)
        self._sync_stack(workdir)
        values = {**variables, **secure_variables, **self._local_variables(run)}
        declared = self.declared_variables()
        write_private(workdir / TFVARS, json.dumps({k: v for k, v in values.items() if k in declared}, indent=1))
        activity = Activity(id=f"tf-{uuid.uuid4().hex[:12]}", kind="apply")
        if not (workdir / ".terraform").is_dir() or not (workdir / ".terraform.lock.hcl").exists():
            code, out = self.runner.run(workdir, "init")
            if code != 0:
                return self._finish(activity, code, out)
        code, out = self.runner.run(workdir, "apply")
        return self._finish(activity, code, out)

    def destroy(self, run: RunRecord) -> Activity:
        activity = Activity(id=f"tf-{uuid.uuid4().hex[:12]}", kind="destroy")
        workdir = self.workdir(run)
        out = "nothing to destroy: the workspace state holds no resources"
        if self._state_resources(run):
            tfvars = workdir / TFVARS
            current = json.loads(tfvars.read_text()) if tfvars.exists() else {}
            if current.get("run_id") not in (None, run.run_id):
                raise EngineError(f"workspace '{run.workspace}' holds run '{current.get('run_id')}', not '{run.run_id}'; destroy that run instead")
            self._sync_stack(workdir)
            if not (workdir / ".terraform").is_dir():
                code, out = self.runner.run(workdir, "init")
                if code != 0:
                    return self._finish(activity, code, out)
            code, out = self.runner.run(workdir, "destroy")
            if code != 0:
                return self._finish(activity, code, out)
        swept = self._stop_orphan_agents(run)
        if swept:
            out += "\n" + "\n".join(swept)
        self._cleanup_run_files(run)
        return self._finish(activity, 0, out)

    def status(self, run: RunRecord, activity: Activity) -> Activity:
        return Activity(**vars(activity))  # local activities finish before apply/destroy return

    def outputs(self, run: RunRecord) -> dict:
        state = self._state(run)
        return {name: out.get("value") for name, out in state.get("outputs", {}).items() if not out.get("sensitive")}

    def resources(self, run: RunRecord) -> list[str]:
        """Resources in the workspace state, plus any live agent of the run that the
        state does not name (started by an apply that crashed before saving its state)."""
        return self._state_resources(run) + [f"orphan_agent:{path.name}:{pid}" for path, pid in self._orphan_agents(run)]

    def _state_resources(self, run: RunRecord) -> list[str]:
        ids = []
        for res in self._state(run).get("resources", []):
            if res.get("mode") != "managed":
                continue
            for inst in res.get("instances", []):
                ident = inst.get("attributes", {}).get("id")
                ids.append(f"{res['type']}.{res['name']}:{ident}")
        return ids

    def state_owner(self, workspace: str) -> str | None:
        """The run id the workspace's state was last applied for, if any."""
        probe = RunRecord(run_id="probe", workspace=workspace, engine=self.name)
        outputs = self._state(probe).get("outputs", {})
        owner = (outputs.get("run_id") or {}).get("value")
        if owner:
            return owner
        tfvars = self.workdir(probe) / TFVARS
        try:
            return json.loads(tfvars.read_text()).get("run_id")
        except (OSError, ValueError):
            return None

    def workspaces(self) -> list[str]:
        """Names of the workspaces this engine has a working directory for."""
        root = self.settings.workspaces_dir
        return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []

    def _orphan_agents(self, run: RunRecord) -> list[tuple[Path, int]]:
        from ephemera.vm.pids import is_agent_process, read_pid

        known = set()
        for res in self._state(run).get("resources", []):
            for inst in res.get("instances", []):
                pid_file = ((inst.get("attributes") or {}).get("input") or {})
                pid_file = pid_file.get("value", pid_file).get("pid_file") if isinstance(pid_file, dict) else None
                if pid_file:
                    known.add(str(pid_file))
        found = []
        for path in sorted((self.run_dir(run) / "agents").glob("*.pid")):
            pid = read_pid(str(path))
            if str(path) not in known and pid and is_agent_process(pid):
                found.append((path, pid))
        return found

    def _stop_orphan_agents(self, run: RunRecord) -> list[str]:
        """Stop agents of the run that no state names; confirm each is gone."""
        from ephemera.vm.control import stop_agent

        done = []
        for path, pid in self._orphan_agents(run):
            stopped = stop_agent(str(path), timeout=10.0)
            done.append(f"orphan agent pid {pid} ({path.name}) not in the state: {'stopped' if stopped else 'did not stop'}")
        return done

    # helpers -----------------------------------------------------------------------------
    def _state(self, run: RunRecord) -> dict:
        path = self.workdir(run) / "terraform.tfstate"
        try:
            text = path.read_text()
        except FileNotFoundError:
            return {}
        if not text.strip():  # Terraform creates it empty when it takes the lock; killed before writing
            return {}
        try:
            return json.loads(text)
        except ValueError as exc:
            raise EngineError(f"state of workspace '{run.workspace}' is unreadable ({exc}); inspect {path}") from None

    def _sync_stack(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        for old in workdir.glob("*.tf"):
            old.unlink()
        for src in self.settings.stack_dir.iterdir():
            if src.is_file() and not src.name.endswith((".tfstate", ".tfvars", ".tfvars.json")):
                shutil.copy2(src, workdir / src.name)

    def _local_variables(self, run: RunRecord) -> dict:
        declared = self.declared_variables()
        if not {"agent_config", "agent_dir"} & declared:
            return {}
        run_dir = self.run_dir(run)
        agent_config = run_dir / "agent.json"
        # The local stand-in for cloud-init user_data: how the "VM" reaches storage.
        write_private(agent_config, json.dumps({"run_id": run.run_id, "config": self.config.to_dict(redact=False)}, indent=1))
        return {"python": sys.executable, "agent_config": str(agent_config), "agent_dir": str(run_dir / "agents")}

    def _cleanup_run_files(self, run: RunRecord) -> None:
        try:
            (self.run_dir(run) / "agent.json").unlink()
        except FileNotFoundError:
            pass

    def _finish(self, activity: Activity, code: int, output: str) -> Activity:
        tail = self.scrubber.scrub("\n".join(output.strip().splitlines()[-LOG_TAIL_LINES:]))
        if code != 0 and any(marker in output for marker in _LOCK_MARKERS):
            raise WorkspaceBusyError("the workspace state is locked by another Terraform run; try again later", log_tail=tail)
        return Activity(id=activity.id, kind=activity.kind, state="COMPLETED" if code == 0 else "FAILED",
                        started_at=activity.started_at, finished_at=now_iso(), log_tail=tail)
