"""The ``terraform`` engine: applies a workspace's stack on this machine.

Each workspace has a working directory ``<home>/workspaces/<name>/`` holding a copy of
the stack, its variables (``ephemera.auto.tfvars.json``, mode 0600), its local state,
and ``ephemera.owner.json``, the run id it was last applied for. Apply and destroy run
synchronously, so the activity they return is already COMPLETED or FAILED. Outputs
and resource ids are read from the state file.

The engine knows no stack: it asks the stack's spec (:mod:`ephemera.stack`) which
variables the stack takes (the ``.tfvars`` file holds only those), and the stack's
hooks for the variables the engine sets (``set_by = "engine"``). The local stack's
hooks (:mod:`ephemera.vm.local_stack`) write each VM's boot document and give the
interpreter, boot folder and agent folder, all in the run's own folder
``<home>/runs/<run_id>/``.

Besides what the state names, a workspace's resources include what the hooks report
(the local stack: live agents of its runs that no state names, ``orphan_agent:...``,
left by an apply killed before it saved its state); destroy has the hooks stop them
and delete what the VMs left. The engine is an
:class:`~ephemera.engines.base.OrphanSweeper`: its workspaces are its working
directories, a workspace's owner is the run id it was last applied for; and an
:class:`~ephemera.engines.base.ActivityLogs`: an activity's whole output is kept (in
memory, scrubbed) until the run's logs take it.

Apply and destroy of one workspace hold an exclusive ``flock`` on its
``ephemera.lock`` for their whole length (the kernel frees it when the holder dies);
a second one meanwhile raises :class:`WorkspaceBusyError`, as Schematics answers for
a locked workspace. So a destroy never inspects a state an apply is still writing.

With ``terraform.state.backend = "s3"`` (:mod:`ephemera.engines.terraform.remote`) the
working directory is only a scratch copy (a Lambda function's ``/tmp``): the state,
its lock and the owner record live in the state bucket, ``init`` runs before every
apply and destroy, and the workspaces, owners, outputs and resources are read from
the bucket. Terraform's S3 lock file refuses a second apply or destroy of the same
workspace from any machine (:class:`WorkspaceBusyError`); a refused apply puts the
owner record back as it found it, and a destroy that leaves no resource deletes the
workspace's objects. An action is killed at its time limit (a Lambda function at its
timeout, at most ``timeouts.action``), which leaves its lock file behind: a lock older
than ``timeouts.action`` plus :data:`STALE_LOCK_GRACE` belongs to no live action, and
the next apply or destroy (the reaper's) breaks it, as ``terraform force-unlock`` would.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import uuid
from pathlib import Path

from ephemera.config import Config
from ephemera.engines.diagnostics import terraform_errors
from ephemera.engines.plan import Plan, parse_plan
from ephemera.engines.terraform.config import TerraformEngineConfig, engine_config
from ephemera.engines.terraform.remote import RemoteStates, write_backend
from ephemera.engines.terraform.runners import BACKEND_FILE, Runner, make_runner
from ephemera.errors import EngineError, WorkspaceBusyError
from ephemera.files import write_private
from ephemera.model.runs import Activity
from ephemera.secrets import Scrubber
from ephemera.stack import stack_hooks
from ephemera.timeutil import now_iso

log = logging.getLogger(__name__)

TFVARS = "ephemera.auto.tfvars.json"
HOLD_FILE = "ephemera.lock"  # flock-ed by the apply or destroy under way in the workspace
OWNER_FILE = "ephemera.owner.json"  # {"run_id": ...}: the run the workspace was last applied for
LOG_TAIL_LINES = 40
KEPT_PLAN_LOGS = 10  # failed plans' outputs kept in <home>/plans/
_LOCK_MARKERS = ("Error acquiring the state lock",)
STALE_LOCK_GRACE = 120  # seconds past timeouts.action before a remote lock is a dead action's (clock skew, the kill)


class TerraformEngine:
    """:class:`~ephemera.engines.base.WorkspaceEngine` and ``OrphanSweeper`` on this machine."""

    name = "terraform"

    def __init__(self, config: Config, settings: TerraformEngineConfig, runner: Runner | None = None):
        self.config = config
        self.settings = settings
        self.runner = runner or make_runner(settings.binary)
        self.scrubber = Scrubber(config.secret_values())
        self._logs: dict[str, str] = {}  # activity id -> its whole output, until read once
        self.stack = settings.stack
        self.hooks = stack_hooks(settings.stack)
        self.remote = RemoteStates(settings.state) if settings.state else None  # None: local state files
        self.stale_lock_after = config.timeouts.action + STALE_LOCK_GRACE  # seconds: no live action holds a lock this old

    @classmethod
    def from_config(cls, config: Config) -> "TerraformEngine":
        return cls(config, engine_config(config))

    # paths ---------------------------------------------------------------------------
    def workdir(self, workspace: str) -> Path:
        return self.settings.workspaces_dir / workspace

    # WorkspaceEngine -------------------------------------------------------------------
    def apply(self, workspace: str, run_id: str, variables: dict, secure_variables: dict) -> Activity:
        with self._hold(workspace):
            return self._apply(workspace, run_id, variables, secure_variables)

    def _apply(self, workspace: str, run_id: str, variables: dict, secure_variables: dict) -> Activity:
        workdir = self.workdir(workspace)
        self._sync_stack(workdir, workspace)
        previous = self._claim(workspace, run_id)
        values = {**variables, **secure_variables}
        values.update(self.hooks.engine_variables(self.stack, self.settings.runs_dir, workspace, run_id, values))
        write_private(workdir / TFVARS, json.dumps(self.stack.takes(values), indent=1))
        if self.remote:
            self.remote.save_variables(workspace, values, self.stack)
        activity = Activity(id=f"tf-{uuid.uuid4().hex[:12]}", kind="apply")
        if self.remote or not (workdir / ".terraform").is_dir() or not (workdir / ".terraform.lock.hcl").exists():
            code, out = self.runner.run(workdir, "init")
            if code != 0:
                return self._finish(activity, code, out)
        code, out = self.runner.run(workdir, "apply")
        try:
            return self._finish(activity, code, out)
        except WorkspaceBusyError:
            if self.remote:  # another run holds the state: its owner record stays
                self.remote.set_owner(workspace, previous)
            raise

    def _claim(self, workspace: str, run_id: str) -> str | None:
        """Record ``run_id`` as the workspace's owner; returns the remote owner it replaced."""
        if self.remote is None:
            write_private(self.workdir(workspace) / OWNER_FILE, json.dumps({"run_id": run_id}))
            return None
        self._refuse_locked(workspace)
        previous = self.remote.owner(workspace)
        self.remote.set_owner(workspace, run_id)
        return previous

    def _refuse_locked(self, workspace: str) -> None:
        age = self.remote.lock_age(workspace) if self.remote is not None else None
        if self.remote is not None and age is not None and age > self.stale_lock_after:
            log.warning(
                "workspace '%s': breaking a state lock %.0fs old, left by an action killed at its time limit", workspace, age
            )
            self.remote.break_lock(workspace)
        elif age is not None:
            raise WorkspaceBusyError(
                f"workspace '{workspace}': its state in S3 is locked by another Terraform run; try again later"
            )

    def destroy(self, workspace: str) -> Activity:
        with self._hold(workspace):
            return self._destroy(workspace)

    def _destroy(self, workspace: str) -> Activity:
        activity = Activity(id=f"tf-{uuid.uuid4().hex[:12]}", kind="destroy")
        workdir = self.workdir(workspace)
        out = "nothing to destroy: the workspace state holds no resources"
        self._refuse_locked(workspace)  # not a state an apply elsewhere is still writing
        ran = bool(self._state_resources(workspace))
        if ran:
            self._sync_stack(workdir, workspace)
            if self.remote and not (workdir / TFVARS).is_file():  # applied in another sandbox
                write_private(workdir / TFVARS, json.dumps(self.remote.destroy_variables(workspace, self.stack), indent=1))
            if self.remote or not (workdir / ".terraform").is_dir():
                code, out = self.runner.run(workdir, "init")
                if code != 0:
                    return self._finish(activity, code, out)
            code, out = self.runner.run(workdir, "destroy")
            if code != 0:
                return self._finish(activity, code, out)
        swept = self.hooks.stop_orphans(self.settings.runs_dir, workspace, self._state(workspace))
        if swept:
            out += "\n" + "\n".join(swept)
        self.hooks.cleanup(self.settings.runs_dir, workspace)
        forgotten = self.remote.forget(workspace) if self.remote else ""
        if forgotten == "busy" and not ran:  # an apply elsewhere took the lock since: its state may gain resources
            raise WorkspaceBusyError(
                f"workspace '{workspace}': its state in S3 is locked by another Terraform run; try again later"
            )
        if forgotten == "deleted":
            out += "\nthe workspace's state, owner and variables are deleted from the state bucket"
        return self._finish(activity, 0, out)

    def status(self, activity: Activity) -> Activity:
        return Activity(**vars(activity))  # local activities finish before apply/destroy return

    def plan(self, workspace: str, run_id: str, variables: dict, secure_variables: dict) -> Plan:
        """Plan in a scratch copy of the workspace (its state copied in, if any), removed
        afterwards: no VM starts, no file of the workspace or of a run is written."""
        scratch = self.settings.workspaces_dir.parent / "plans" / f"{workspace}-{uuid.uuid4().hex[:8]}"
        try:
            self._sync_stack(scratch, workspace)  # remote state: `plan -lock=false` reads it from the bucket
            state = self.workdir(workspace) / "terraform.tfstate"
            if self.remote is None and state.is_file():
                with self._hold(workspace):  # not a state an apply or destroy is writing (busy: try again later)
                    shutil.copy2(state, scratch / "terraform.tfstate")
            values = {**variables, **secure_variables, **self.hooks.plan_variables(self.stack, scratch)}
            write_private(scratch / TFVARS, json.dumps(self.stack.takes(values), indent=1))
            step = "init"
            code, out = self.runner.run(scratch, step)
            if code == 0:
                step = "plan"
                code, out = self.runner.run(scratch, step)
            text = self.scrubber.scrub(out.strip())
            if code != 0:
                log = self._keep_plan_log(scratch, text)
                raise EngineError(
                    f"terraform plan of workspace '{workspace}' failed (exit {code}) at `terraform {step}`:\n"
                    f"{terraform_errors(text)}\nits whole output (secrets masked): {log}",
                    log_tail="\n".join(text.splitlines()[-LOG_TAIL_LINES:]),
                )
            return parse_plan(text)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _keep_plan_log(self, scratch: Path, text: str) -> Path:
        """Keep a failed plan's (scrubbed) output beside the scratch folders, the last
        ``KEPT_PLAN_LOGS`` of them; the scratch folder itself goes (its variables hold secrets)."""
        log = scratch.parent / f"{scratch.name}.log"
        write_private(log, text + "\n")
        logs = sorted(scratch.parent.glob("*.log"), key=lambda p: p.stat().st_mtime)
        for old in logs[:-KEPT_PLAN_LOGS]:
            old.unlink(missing_ok=True)
        return log

    def activity_log(self, activity: Activity) -> str:
        """The whole Terraform output of an activity run by this engine object (read once)."""
        return self._logs.pop(activity.id, activity.log_tail)

    def outputs(self, workspace: str) -> dict:
        state = self._state(workspace)
        return {name: out.get("value") for name, out in state.get("outputs", {}).items() if not out.get("sensitive")}

    def resources(self, workspace: str) -> list[str]:
        """Resources in the workspace state, plus those the stack's hooks find that the state
        does not name (the local stack: agents started by an apply that died before saving its state)."""
        return self._state_resources(workspace) + self.hooks.orphan_resources(
            self.settings.runs_dir, workspace, self._state(workspace)
        )

    # OrphanSweeper ---------------------------------------------------------------------
    def workspaces(self) -> list[str]:
        """Names of the workspaces this engine has a working directory for."""
        if self.remote:
            return self.remote.workspaces()
        root = self.settings.workspaces_dir
        return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []

    def owner(self, workspace: str) -> str | None:
        """The run id the workspace was last applied for: its owner file, else (for a
        workspace applied by an older version) the run id in its variables."""
        if self.remote:
            return self.remote.owner(workspace)
        workdir = self.workdir(workspace)
        for name in (OWNER_FILE, TFVARS):
            try:
                owner = json.loads((workdir / name).read_text()).get("run_id")
            except (OSError, ValueError, AttributeError):
                continue
            if owner:
                return str(owner)
        return None

    # the state ------------------------------------------------------------
    def _state(self, workspace: str) -> dict:
        if self.remote:
            return self.remote.read(workspace)
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

    def _sync_stack(self, workdir: Path, workspace: str) -> None:
        """The stack's files in ``workdir``, and the remote backend's files where the state is remote."""
        self._copy_stack(workdir)
        if self.settings.state is not None:
            write_backend(self.settings.state, workspace, workdir)

    def _copy_stack(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / BACKEND_FILE).unlink(missing_ok=True)  # a remote backend's settings, rewritten if still remote
        for old in workdir.glob("*.tf"):
            old.unlink()
        for src in self.stack.folder.iterdir():
            if src.is_file() and not src.name.endswith((".tfstate", ".tfvars", ".tfvars.json")):
                shutil.copy2(src, workdir / src.name)
            elif src.is_dir() and not src.name.startswith("."):  # the stack's local modules (./modules/...)
                shutil.rmtree(workdir / src.name, ignore_errors=True)
                shutil.copytree(src, workdir / src.name)

    def _finish(self, activity: Activity, code: int, output: str) -> Activity:
        self._logs[activity.id] = self.scrubber.scrub(output.strip())
        tail = self.scrubber.scrub("\n".join(output.strip().splitlines()[-LOG_TAIL_LINES:]))
        if code != 0 and any(marker in output for marker in _LOCK_MARKERS):
            raise WorkspaceBusyError("the workspace state is locked by another Terraform run; try again later", log_tail=tail)
        return Activity(
            id=activity.id,
            kind=activity.kind,
            state="COMPLETED" if code == 0 else "FAILED",
            started_at=activity.started_at,
            finished_at=now_iso(),
            log_tail=tail,
        )
