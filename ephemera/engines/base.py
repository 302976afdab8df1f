"""The workspace engine interface.

An engine applies and destroys the Terraform workspace of a run. It is async in
shape: ``apply`` and ``destroy`` start an activity and return its record, which may
already be done (the local Terraform engine runs in-process) or still RUNNING
(Schematics); ``status`` polls it. ``resources`` is what the engine's state still
holds for the workspace: a destroy is confirmed only when it is empty.
"""

from __future__ import annotations

from typing import Protocol

from ephemera.model.runs import Activity, RunRecord


class WorkspaceEngine(Protocol):
    name: str  # the registry name: terraform | schematics

    def apply(self, run: RunRecord, variables: dict, secure_variables: dict) -> Activity:
        """Start applying the run's workspace with these Terraform variables.

        ``secure_variables`` hold secrets: never logged, never in the run record."""

    def destroy(self, run: RunRecord) -> Activity:
        """Start destroying everything the workspace holds. Quiet and fast if nothing is left."""

    def status(self, run: RunRecord, activity: Activity) -> Activity:
        """The activity's current state (a new record; the argument is not changed)."""

    def outputs(self, run: RunRecord) -> dict:
        """Terraform outputs by name; sensitive outputs are left out."""

    def resources(self, run: RunRecord) -> list[str]:
        """Ids of the resources the workspace state still holds."""
