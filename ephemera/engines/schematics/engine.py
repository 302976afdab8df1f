"""The Schematics engine: apply and destroy one IBM Cloud Schematics workspace.

The engine serves one Ephemera workspace (``workspace.name``) backed by one Schematics
workspace (``schematics.workspace_id``); any other workspace name is refused. Contract
with the actions (both stacks take the same run variables):

- ``apply(workspace, run_id, variables, secure_variables)``: ``variables`` are the run's Terraform
  variables -- ``run_id``, ``workspace``, ``worker_count``, ``job_key`` (key of the job
  spec in the state bucket), ``state_bucket``, ``hard_deadline`` (ISO 8601) and
  ``hard_timeout_seconds``, plus any ``workspace.variables`` of the config.
  ``secure_variables`` is empty since the VMs got identities (kept for stacks that
  need one; sent as ``secure: true``, which Schematics never shows again). All of
  them are written to the workspace's variable store (the template's ``values``
  call) before the apply starts, each with its Terraform ``type`` (``string``,
  ``number``, ``bool``, ``list(string)``, ...); values are strings, lists and maps in
  HCL (JSON is HCL). The call replaces the whole store, so every variable an operator
  set on the workspace is sent back as it was (with its type); a *secure* one, whose
  value Schematics does not return, is sent from ``schematics.secure_variables``, and
  the apply stops before changing anything if it is not there. The variables older
  versions wrote as secure values (storage keys, the account's API key) are dropped.
  The ``run_id`` variable is always the run applied for: it is how
  :meth:`SchematicsEngine.owner` tells whose resources the workspace holds.
- Apply and destroy need an IAM *refresh token* (header ``refresh_token``); IAM issues
  one only to the client id/secret ``bx``/``bx``, so the engine's IAM authenticator
  uses them. The service URL is set explicitly (the 1.1.0 SDK defaults to a dev URL).
- Both return as soon as Schematics has accepted the job: an :class:`Activity` in state
  RUNNING with the Schematics activity id. ``status`` polls ``get_workspace_activity``
  until COMPLETED or FAILED; a failed activity carries the tail of its log.
- A workspace that is locked, frozen by a running job (``INPROGRESS``) or answered
  with HTTP 409/423 raises :class:`WorkspaceBusyError` ("try later"). Only HTTP 429,
  502, 503, 504 and connection errors are retried, with exponential backoff; every
  other failure raises :class:`EngineError` naming the call and the fix.
- ``outputs`` reads ``get_workspace_outputs`` (a list per template; sensitive outputs
  are left out); ``resources`` lists the resource ids of ``get_workspace_resources``.
- It is an :class:`~ephemera.engines.base.OrphanSweeper`: ``workspaces`` is its one
  workspace; ``owner`` is the ``run_id`` in the workspace's variable store (the run it
  was last applied for), else its ``run_id`` output.
- No secret (API key, tokens, secure values) reaches a log record, an exception, an
  activity or a result: every text the engine emits is scrubbed, and a log filter on
  the SDK's loggers scrubs what the SDK itself logs at DEBUG level.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from urllib.parse import urlparse

from ephemera.config import Config
from ephemera.engines.diagnostics import terraform_errors
from ephemera.engines.plan import Plan, parse_plan
from ephemera.engines.schematics.client import SchematicsClient
from ephemera.engines.schematics.config import SchematicsSettings
from ephemera.engines.schematics.variables import variablestore
from ephemera.errors import EngineError, WorkspaceBusyError
from ephemera.model.runs import Activity
from ephemera.timeutil import now_iso

log = logging.getLogger(__name__)

PLAN_POLL_SECONDS = 5.0  # between polls of a plan job
PLAN_POLLS = 120  # a plan job not done after 10 minutes is given up on

BUSY_WORKSPACE_STATES = frozenset({"INPROGRESS", "IN PROGRESS", "LOCKED"})
EMPTY_WORKSPACE_STATES = frozenset({"INACTIVE", "DRAFT"})  # nothing was ever applied
COMPLETED_STATES = frozenset({"COMPLETED"})
FAILED_STATES = frozenset({"FAILED", "STOPPED", "CANCELLED", "CANCELED", "TERMINATED", "ERROR"})


class SchematicsEngine(SchematicsClient):
    """:class:`~ephemera.engines.base.WorkspaceEngine` over one Schematics workspace (its SDK calls: :class:`SchematicsClient`)."""

    name = "schematics"

    @classmethod
    def from_config(cls, config: Config) -> "SchematicsEngine":
        return cls(SchematicsSettings.from_config(config), config.workspace.name)

    def _check(self, workspace: str) -> None:
        if workspace != self.workspace:
            raise EngineError(
                f"the schematics engine serves workspace '{self.workspace}' (Schematics workspace "
                f"'{self.settings.workspace_id}'), not '{workspace}'; use the config of workspace '{workspace}'"
            )

    # -- workspace ------------------------------------------------------------------

    def _workspace(self, check_busy: bool = True) -> dict:
        ws = self._call("get workspace", self._client().get_workspace, self.settings.workspace_id)
        status = str(ws.get("status") or "").upper()
        ws_status = ws.get("workspace_status") or {}
        if check_busy and (ws_status.get("locked") or status in BUSY_WORKSPACE_STATES):
            by = ws_status.get("locked_by") or "a running job"
            raise WorkspaceBusyError(
                f"Schematics workspace '{self.settings.workspace_id}' is locked by {by} (status {status or '?'}); try later"
            )
        if check_busy and ws_status.get("frozen"):
            raise EngineError(
                f"Schematics workspace '{self.settings.workspace_id}' is frozen; unfreeze it "
                "(ibmcloud schematics workspace update --id ... with frozen: false) to let Ephemera apply and destroy",
                retryable=False,
            )
        return ws

    def _template_id(self, ws: dict) -> str:
        templates = ws.get("template_data") or []
        if not templates or not templates[0].get("id"):
            raise EngineError(
                f"Schematics workspace '{self.settings.workspace_id}' has no Terraform template; "
                "create it from terraform/ibm-vpc-gpu (see docs/ibm-cloud.md)"
            )
        return templates[0]["id"]

    def _variablestore(self, ws: dict, variables: dict, secure_variables: dict) -> list[dict]:
        existing = (ws.get("template_data") or [{}])[0].get("variablestore") or []
        for value in list(secure_variables.values()) + list(self.settings.secure_variables.values()):
            self._remember_secret(str(value) if value else None)
        return variablestore(existing, variables, secure_variables, self.settings.secure_variables, self.settings.workspace_id)

    # -- WorkspaceEngine ----------------------------------------------------------------

    def _set_inputs(self, workspace: str, run_id: str, variables: dict, secure_variables: dict):
        """Put the run's variables in the workspace; the SDK service."""
        self._check(workspace)
        variables = {**variables, "run_id": run_id}
        for value in secure_variables.values():
            self._remember_secret(str(value) if value else None)
        service = self._client()
        ws = self._workspace()
        template_id = self._template_id(ws)
        store = self._variablestore(ws, variables, secure_variables)
        self._call(
            "update variables", service.replace_workspace_inputs, self.settings.workspace_id, template_id, variablestore=store
        )
        return service

    def apply(self, workspace: str, run_id: str, variables: dict, secure_variables: dict) -> Activity:
        service = self._set_inputs(workspace, run_id, variables, secure_variables)
        token = self._refresh_token()
        result = self._call("start apply", service.apply_workspace_command, self.settings.workspace_id, token)
        return self._started("apply", result, run_id)

    def plan(self, workspace: str, run_id: str, variables: dict, secure_variables: dict) -> Plan:
        """A Schematics plan job (:class:`~ephemera.engines.base.Planner`), polled until it ends;
        its log is the plan. The workspace's inputs are set as an apply would set them."""
        service = self._set_inputs(workspace, run_id, variables, secure_variables)
        token = self._refresh_token()
        activity = self._started(
            "plan", self._call("start plan", service.plan_workspace_command, self.settings.workspace_id, token), run_id
        )
        for _ in range(PLAN_POLLS):
            activity = self.status(activity)
            if activity.done:
                break
            self._sleep(PLAN_POLL_SECONDS)
        if not activity.done:
            raise EngineError(
                f"schematics plan {activity.id} not finished after {PLAN_POLLS * PLAN_POLL_SECONDS:.0f}s", retryable=True
            )
        text = self.activity_log(activity)
        if activity.state == "FAILED":
            raise EngineError(
                f"schematics plan {activity.id} failed:\n{terraform_errors(text)}",
                log_tail="\n".join(text.splitlines()[-self.settings.log_tail_lines :]),
            )
        return parse_plan(text)

    def destroy(self, workspace: str) -> Activity:
        self._check(workspace)
        service = self._client()
        ws = self._workspace()
        status = str(ws.get("status") or "").upper()
        if status in EMPTY_WORKSPACE_STATES:
            now = now_iso()
            return Activity(
                id=f"noop-{uuid.uuid4().hex[:12]}",
                kind="destroy",
                state="COMPLETED",
                started_at=now,
                finished_at=now,
                log_tail=f"workspace status {status}: nothing to destroy",
            )
        token = self._refresh_token()
        result = self._call("start destroy", service.destroy_workspace_command, self.settings.workspace_id, token)
        return self._started("destroy", result, f"workspace {workspace}")

    def _started(self, kind: str, result: dict, what: str) -> Activity:
        activity_id = (result or {}).get("activityid") or (result or {}).get("action_id")
        if not activity_id:
            raise EngineError(f"schematics start {kind}: the response names no activity id", retryable=True)
        log.info("schematics %s started for %s: workspace %s, activity %s", kind, what, self.settings.workspace_id, activity_id)
        return Activity(id=activity_id, kind=kind, state="RUNNING")

    def status(self, activity: Activity) -> Activity:
        if activity.done or activity.id.startswith("noop-"):
            return dataclasses.replace(activity)
        act = self._call("get activity", self._client().get_workspace_activity, self.settings.workspace_id, activity.id)
        state = str(act.get("status") or "").upper()
        if state in COMPLETED_STATES:
            return dataclasses.replace(activity, state="COMPLETED", finished_at=now_iso(), log_tail="")
        if state in FAILED_STATES:
            return dataclasses.replace(
                activity, state="FAILED", finished_at=now_iso(), log_tail=self._log_tail(activity.id, act, state)
            )
        return dataclasses.replace(activity, state="RUNNING")

    def _log_tail(self, activity_id: str, act: dict, state: str) -> str:
        """The last lines of the activity's Terraform log, or its messages if the log is unavailable."""
        lines = self._log_lines(activity_id, act, state, self.settings.log_tail_lines)
        return self._clean("\n".join(lines[-self.settings.log_tail_lines :]))

    def _log_lines(self, activity_id: str, act: dict, state: str, limit: int | None) -> list[str]:
        """The activity's messages, then its Terraform log (the last ``limit`` lines of it, or all)."""
        lines: list[str] = [f"Schematics activity {activity_id}: {state}"]
        for msg in act.get("message") or []:
            lines.append(str(msg))
        for tpl in act.get("templates") or []:
            if tpl.get("message"):
                lines.append(str(tpl["message"]))
        try:
            logs = self._call(
                "get activity logs", self._client().get_workspace_activity_logs, self.settings.workspace_id, activity_id
            )
            for tpl in (logs or {}).get("templates") or []:
                if tpl.get("log_url"):
                    lines.extend(self._fetch_log(tpl["log_url"], limit))
        except EngineError as exc:
            lines.append(f"(activity log unavailable: {exc.message})")
        return "\n".join(line.rstrip() for line in lines if line.strip()).splitlines()

    def activity_log(self, activity: Activity) -> str:
        """The activity's whole job log (:class:`~ephemera.engines.base.ActivityLogs`), scrubbed."""
        if activity.id.startswith("noop-"):
            return activity.log_tail
        act = self._call("get activity", self._client().get_workspace_activity, self.settings.workspace_id, activity.id)
        return self._clean("\n".join(self._log_lines(activity.id, act, str(act.get("status") or "").upper(), None)))

    def _fetch_log(self, url: str, limit: int | None = None) -> list[str]:
        """GET a Schematics log URL with the IAM token; only on the service's own host or IBM Cloud."""
        host = urlparse(url).hostname or ""
        if host != urlparse(self.settings.service_url).hostname and not host.endswith(".cloud.ibm.com"):
            return [f"(log at {host} not fetched: not a Schematics host)"]
        request: dict = {"headers": {}}
        self._client()
        try:
            self._authenticator.authenticate(request)
            response = self._service.http_client.get(url, headers=request["headers"], timeout=30)
        except Exception as exc:  # the log is best effort; the messages above stay
            return [f"(activity log not fetched: {type(exc).__name__})"]
        if response.status_code != 200:
            return [f"(activity log not fetched: HTTP {response.status_code})"]
        lines = response.text.splitlines()
        return lines if limit is None else lines[-limit:]

    def outputs(self, workspace: str) -> dict:
        self._check(workspace)
        templates = self._call("get outputs", self._client().get_workspace_outputs, self.settings.workspace_id) or []
        out: dict = {}
        for tpl in templates:
            for item in tpl.get("output_values") or []:
                if not isinstance(item, dict):
                    continue
                for name, spec in item.items():
                    if isinstance(spec, dict) and "value" in spec:
                        if not spec.get("sensitive"):
                            out[name] = spec["value"]
                    else:
                        out[name] = spec
        return out

    def resources(self, workspace: str) -> list[str]:
        self._check(workspace)
        templates = self._call("get resources", self._client().get_workspace_resources, self.settings.workspace_id) or []
        ids: list[str] = []
        for tpl in templates:
            for res in (tpl.get("resources") or []) + (tpl.get("null_resources") or []):
                if not isinstance(res, dict):
                    continue
                rid = (
                    res.get("resource_id") or res.get("resource_crn") or f"{res.get('resource_type')}.{res.get('resource_name')}"
                )
                if rid not in ids:
                    ids.append(rid)
        return ids

    # -- OrphanSweeper ------------------------------------------------------------------

    def workspaces(self) -> list[str]:
        """The one workspace this engine serves."""
        return [self.workspace]

    def owner(self, workspace: str) -> str | None:
        """The run the workspace was last applied for: ``run_id`` in its variable store
        (written before every apply), else its ``run_id`` output."""
        self._check(workspace)
        ws = self._workspace(check_busy=False)
        for var in (ws.get("template_data") or [{}])[0].get("variablestore") or []:
            if var.get("name") == "run_id" and not var.get("secure") and var.get("value"):
                return str(var["value"])
        owner = self.outputs(workspace).get("run_id")
        return str(owner) if owner else None
