"""The Schematics fake (:mod:`tests.fakes.schematics_server`) with what each workspace's apply
makes scripted per workspace: an image build applies two workspaces, a builder and an image,
whose resources and outputs differ. ``server.on_apply(workspace_id, resources, outputs)``;
a workspace with no script gets the fake's global ``resources_on_apply``/``outputs_on_apply``.
"""

from __future__ import annotations

from tests.fakes.schematics_server import FakeWorkspace, SchematicsServer


class PerWorkspaceSchematics(SchematicsServer):
    def __init__(self, workspace_id: str):
        self.applied: dict[str, tuple[list, dict]] = {}  # workspace id -> (resources, outputs) of its applies
        super().__init__(workspace_id)

    def on_apply(self, workspace_id: str, resources: list[dict], outputs: dict) -> None:
        self.applied[workspace_id] = (resources, outputs)

    def _advance(self, ws: FakeWorkspace, act: dict) -> None:
        if ws.id not in self.applied:
            return super()._advance(ws, act)
        saved = self.resources_on_apply, self.outputs_on_apply
        self.resources_on_apply, self.outputs_on_apply = self.applied[ws.id]
        try:
            super()._advance(ws, act)
        finally:
            self.resources_on_apply, self.outputs_on_apply = saved
