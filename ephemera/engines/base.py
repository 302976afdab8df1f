"""The workspace engine interface, and the optional capabilities an engine may have.

An engine applies and destroys a Terraform workspace, named by the workspace (the run
record is not its business). It is async in shape: ``apply`` and ``destroy`` start an
activity and return its record, which may already be done (the local Terraform
engine runs in-process) or still RUNNING (Schematics); ``status`` polls it.
``resources`` is what the engine still holds for the workspace: a destroy is
confirmed only when it is empty.

Optional capabilities are named protocols, checked with ``isinstance`` where they are
used (never ``hasattr``): :class:`OrphanSweeper` is what the reaper's reconcile needs
to find what no open run owns; :class:`ActivityLogs` gives an activity's whole job
log (stored with the run's logs); :class:`Planner` says what an apply would create.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ephemera.engines.plan import Plan
from ephemera.model.runs import Activity


class WorkspaceEngine(Protocol):
    name: str  # the registry name: terraform | schematics

    def apply(self, workspace: str, run_id: str, variables: dict, secure_variables: dict) -> Activity:
        """Start applying the workspace for run ``run_id`` with these Terraform variables.

        The engine remembers ``run_id`` as the run the workspace is applied for (see
        :meth:`OrphanSweeper.owner`). ``secure_variables`` hold secrets: never logged,
        never in an activity, an exception or the engine's own files beyond what
        Terraform must read."""

    def destroy(self, workspace: str) -> Activity:
        """Start destroying everything the workspace holds. Quiet and fast if nothing is left."""

    def status(self, activity: Activity) -> Activity:
        """The activity's current state (a new record; the argument is not changed)."""

    def outputs(self, workspace: str) -> dict:
        """Terraform outputs by name; sensitive outputs are left out."""

    def resources(self, workspace: str) -> list[str]:
        """Ids of the resources the workspace still holds (empty once destroyed)."""


@runtime_checkable
class OrphanSweeper(Protocol):
    """An engine that can say which workspaces it holds and whose resources they are.

    With it the reaper's reconcile records resources an open run's record does not
    name, and destroys (through :meth:`WorkspaceEngine.destroy`) what a workspace holds
    for a run that is DESTROYED or unknown to the ledger."""

    def workspaces(self) -> list[str]:
        """Names of every workspace the engine may hold resources for."""

    def owner(self, workspace: str) -> str | None:
        """The run id the workspace was last applied for, or None if it never was."""


@runtime_checkable
class ActivityLogs(Protocol):
    """An engine that can give an activity's whole job log (not only its tail)."""

    def activity_log(self, activity: Activity) -> str:
        """The activity's log (Terraform's output), scrubbed of secrets; "" if none."""


@runtime_checkable
class Planner(Protocol):
    """An engine that can say what an apply would do, without doing it."""

    def plan(self, workspace: str, run_id: str, variables: dict, secure_variables: dict) -> Plan:
        """Plan the workspace with these variables and wait for the plan; create nothing.
        EngineError (with the log tail) if the plan fails."""
