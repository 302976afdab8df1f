"""A fake IBM Cloud Schematics API on 127.0.0.1, for driving the real SDK over HTTP.

It serves the workspace calls the Schematics engine makes (get workspace, replace
template values, apply, destroy, plan (whose job changes nothing; its log is a Terraform plan), get activity, activity logs and the log file,
outputs, resources), keeps a small state per workspace, and records every request
(method, path, headers, JSON body) so tests can assert what the SDK sent.

Activities advance one step per ``GET .../actions/<id>``: each follows the script
``apply_script`` / ``destroy_script`` (default ``["INPROGRESS", "COMPLETED"]``). When an
apply completes the workspace becomes ACTIVE with ``resources_on_apply`` and
``outputs_on_apply``; when a destroy completes it becomes INACTIVE and empty.
``fail_next(method, path_suffix, status)`` queues an HTTP error for the next matching
request; ``lock()`` marks the workspace locked by another job.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Recorded:
    method: str  # HTTP verb
    path: str  # path with query string
    headers: dict  # request headers (lower-cased names)
    body: object  # parsed JSON body, raw text, or None


@dataclass
class FakeWorkspace:
    id: str  # workspace id
    template_id: str  # the id of its one Terraform template
    status: str = "INACTIVE"  # INACTIVE | ACTIVE | INPROGRESS | FAILED
    locked: bool = False  # workspace_status.locked
    frozen: bool = False  # workspace_status.frozen
    variablestore: list = field(default_factory=list)  # as stored (secure values kept here, masked in GETs)
    activities: dict = field(default_factory=dict)  # activity id -> {"name", "script", "step", "status"}
    resources: list = field(default_factory=list)  # resource dicts of get_workspace_resources
    outputs: dict = field(default_factory=dict)  # name -> {"value", "type", "sensitive"}


# What a Schematics plan job logs for the ibm-vpc-gpu stack with two workers (Terraform's
# human-readable plan, as the job's log_url serves it), abridged.
PLAN_LOG = """ 2026/12/02 10:00:00 Terraform plan | Terraform used the selected providers to generate the following execution
 2026/12/02 10:00:00 Terraform plan | plan. Resource actions are indicated with the following symbols:
 2026/12/02 10:00:00 Terraform plan |   + create
 2026/12/02 10:00:00 Terraform plan |
 2026/12/02 10:00:00 Terraform plan | Terraform will perform the following actions:
 2026/12/02 10:00:00 Terraform plan |
 2026/12/02 10:00:00 Terraform plan |   # ibm_is_vpc.run will be created
 2026/12/02 10:00:00 Terraform plan |   + resource "ibm_is_vpc" "run" {
 2026/12/02 10:00:00 Terraform plan |       + name = "ephemera-gpu-run"
 2026/12/02 10:00:00 Terraform plan |     }
 2026/12/02 10:00:00 Terraform plan |
 2026/12/02 10:00:00 Terraform plan |   # ibm_is_subnet.run will be created
 2026/12/02 10:00:00 Terraform plan |   + resource "ibm_is_subnet" "run" {
 2026/12/02 10:00:00 Terraform plan |       + zone = "us-south-1"
 2026/12/02 10:00:00 Terraform plan |     }
 2026/12/02 10:00:00 Terraform plan |
 2026/12/02 10:00:00 Terraform plan |   # ibm_is_instance.worker[0] will be created
 2026/12/02 10:00:00 Terraform plan |   + resource "ibm_is_instance" "worker" {
 2026/12/02 10:00:00 Terraform plan |       + name    = "ephemera-gpu-w0"
 2026/12/02 10:00:00 Terraform plan |       + profile = "gx3-16x80x1l4"
 2026/12/02 10:00:00 Terraform plan |       + boot_volume {
 2026/12/02 10:00:00 Terraform plan |           + profile = "general-purpose"
 2026/12/02 10:00:00 Terraform plan |         }
 2026/12/02 10:00:00 Terraform plan |     }
 2026/12/02 10:00:00 Terraform plan |
 2026/12/02 10:00:00 Terraform plan |   # ibm_is_instance.worker[1] will be created
 2026/12/02 10:00:00 Terraform plan |   + resource "ibm_is_instance" "worker" {
 2026/12/02 10:00:00 Terraform plan |       + name    = "ephemera-gpu-w1"
 2026/12/02 10:00:00 Terraform plan |       + profile = "gx3-16x80x1l4"
 2026/12/02 10:00:00 Terraform plan |     }
 2026/12/02 10:00:00 Terraform plan |
 2026/12/02 10:00:00 Terraform plan | Plan: 4 to add, 0 to change, 0 to destroy.
 2026/12/02 10:00:00 Command finished successfully.
"""


class SchematicsServer:
    """The running fake; ``url`` is its base URL (set as schematics.url)."""

    def __init__(self, workspace_id: str = "us-south.workspace.ephemera-gpu.1a2b3c4d"):
        self.requests: list[Recorded] = []
        self.lock_ = threading.Lock()
        self.workspaces: dict[str, FakeWorkspace] = {}
        self.apply_script = ["INPROGRESS", "COMPLETED"]
        self.apply_scripts: list[list[str]] = []  # scripts of the next applies, one each, before apply_script
        self.destroy_script = ["INPROGRESS", "COMPLETED"]
        self.plan_script = ["INPROGRESS", "COMPLETED"]
        self.plan_log = PLAN_LOG
        self.failure_log = "Error: creating instance: Insufficient capacity for profile gx3-16x80x1l4 in zone us-south-1"
        self.resources_on_apply = [
            {"resource_type": "ibm_is_vpc", "resource_name": "vpc", "resource_id": "r006-vpc-0001"},
            {"resource_type": "ibm_is_instance", "resource_name": "worker[0]", "resource_id": "0717_inst-0001"},
        ]
        self.outputs_on_apply = {
            "vpc_id": {"value": "r006-vpc-0001", "type": "string", "sensitive": False},
            "instance_ids": {"value": ["0717_inst-0001"], "type": "list", "sensitive": False},
            "private_ips": {"value": ["10.240.0.4"], "type": "list", "sensitive": False},
            "debug_secret": {"value": "do-not-show", "type": "string", "sensitive": True},
        }
        self._failures: list[tuple[str, str, int, dict]] = []
        self.token_check = None  # optional callable(access_token) -> bool, e.g. "issued by the fake IAM"
        self.add_workspace(workspace_id)
        self.workspace_id = workspace_id
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    # -- controls -------------------------------------------------------------------

    def add_workspace(self, workspace_id: str) -> FakeWorkspace:
        ws = FakeWorkspace(id=workspace_id, template_id=f"tpl-{uuid.uuid4().hex[:8]}")
        ws.variablestore = [{"name": "region", "value": "us-south", "secure": False}]
        self.workspaces[workspace_id] = ws
        return ws

    @property
    def workspace(self) -> FakeWorkspace:
        return self.workspaces[self.workspace_id]

    def lock(self, locked: bool = True) -> None:
        self.workspace.locked = locked

    def fail_next(self, method: str, path_suffix: str, status: int, message: str = "injected failure") -> None:
        """The next ``method`` request whose path ends with ``path_suffix`` answers ``status``."""
        self._failures.append((method, path_suffix, status, {"requestid": "fake", "message": message, "statuscode": str(status)}))

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def calls(self, method: str | None = None, suffix: str = "") -> list[Recorded]:
        return [r for r in self.requests if (method is None or r.method == method) and r.path.split("?")[0].endswith(suffix)]

    # -- HTTP -------------------------------------------------------------------------

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _reply(self, status: int, body, content_type: str = "application/json") -> None:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                headers = {k.lower(): v for k, v in self.headers.items()}
                with server.lock_:
                    server.requests.append(Recorded(method, self.path, headers, body))
                    status, reply, ctype = server._route(method, self.path.split("?")[0], headers, body)
                self._reply(status, reply, ctype)

            def do_GET(self):
                self._handle("GET")

            def do_PUT(self):
                self._handle("PUT")

            def do_POST(self):
                self._handle("POST")

            def do_DELETE(self):
                self._handle("DELETE")

        return Handler

    def _route(self, method: str, path: str, headers: dict, body) -> tuple[int, object, str]:
        for i, (m, suffix, status, err) in enumerate(self._failures):
            if m == method and path.endswith(suffix):
                del self._failures[i]
                return status, err, "application/json"
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or (self.token_check and not self.token_check(auth[7:])):
            return 401, {"message": "missing or unknown bearer token", "statuscode": "401"}, "application/json"
        m = re.match(r"^/v1/workspaces/([^/]+)(/.*)?$", path)
        if not m or m.group(1) not in self.workspaces:
            return 404, {"message": f"no such workspace path {path}", "statuscode": "404"}, "application/json"
        ws, rest = self.workspaces[m.group(1)], m.group(2) or ""
        j = "application/json"
        if method == "GET" and rest == "":
            return 200, self._workspace_json(ws), j
        if method == "PUT" and rest == f"/template_data/{ws.template_id}/values":
            if ws.locked or ws.status == "INPROGRESS":
                return 409, {"message": "Workspace is locked by an ongoing job", "statuscode": "409"}, j
            ws.variablestore = list((body or {}).get("variablestore") or [])
            return 200, {"variablestore": self._masked(ws.variablestore)}, j
        if (method == "PUT" and rest in ("/apply", "/destroy")) or (method == "POST" and rest == "/plan"):
            if not headers.get("refresh_token"):
                return 400, {"message": "refresh_token header is required", "statuscode": "400"}, j
            if ws.locked or ws.status == "INPROGRESS":
                return 409, {"message": "Workspace is locked by an ongoing job", "statuscode": "409"}, j
            kind = rest[1:]
            aid = uuid.uuid4().hex
            script = list({"apply": self.apply_script, "destroy": self.destroy_script}.get(kind, self.plan_script))
            if kind == "apply" and self.apply_scripts:
                script = list(self.apply_scripts.pop(0))
            ws.activities[aid] = {"name": kind.upper(), "script": script, "step": 0, "status": "CREATED", "before": ws.status}
            ws.status = "INPROGRESS"
            return 202, {"activityid": aid}, j
        m2 = re.match(r"^/actions/([^/]+)(/logs)?$", rest)
        if method == "GET" and m2 and m2.group(1) in ws.activities:
            act = ws.activities[m2.group(1)]
            if m2.group(2):
                log_url = f"{self.url}/v1/workspaces/{ws.id}/runtime_data/{ws.template_id}/log_store/actions/{m2.group(1)}"
                return (
                    200,
                    {
                        "action_id": m2.group(1),
                        "name": act["name"],
                        "templates": [{"template_id": ws.template_id, "log_url": log_url}],
                    },
                    j,
                )
            self._advance(ws, act)
            return (
                200,
                {
                    "action_id": m2.group(1),
                    "name": act["name"],
                    "status": act["status"],
                    "message": [f"job {act['status']}"],
                    "templates": [{"template_id": ws.template_id, "status": act["status"]}],
                },
                j,
            )
        m3 = re.match(r"^/runtime_data/[^/]+/log_store/actions/([^/]+)$", rest)
        if method == "GET" and m3 and ws.activities.get(m3.group(1), {}).get("name") == "PLAN":
            return 200, self.plan_log, "text/plain"
        if method == "GET" and m3:
            lines = [f"line {i}: terraform output" for i in range(60)] + [
                self.failure_log,
                "Terraform APPLY error: exit status 1",
            ]
            return 200, "\n".join(lines) + "\n", "text/plain"
        if method == "GET" and rest == "/output_values":
            return (
                200,
                [
                    {
                        "id": ws.template_id,
                        "folder": ".",
                        "value_type": "terraform_v1.5",
                        "output_values": [dict(ws.outputs)] if ws.outputs else [],
                    }
                ],
                j,
            )
        if method == "GET" and rest == "/resources":
            return (
                200,
                [{"id": ws.template_id, "folder": ".", "resources": list(ws.resources), "resources_count": len(ws.resources)}],
                j,
            )
        return 404, {"message": f"not served by the fake: {method} {path}", "statuscode": "404"}, j

    def _advance(self, ws: FakeWorkspace, act: dict) -> None:
        if act["status"] in ("COMPLETED", "FAILED"):
            return
        script = act["script"]
        act["status"] = script[min(act["step"], len(script) - 1)]
        act["step"] += 1
        if act["status"] == "COMPLETED":
            if act["name"] == "PLAN":  # a plan job changes nothing
                ws.status = act["before"]
            elif act["name"] == "APPLY":
                ws.status, ws.resources, ws.outputs = "ACTIVE", list(self.resources_on_apply), dict(self.outputs_on_apply)
            else:
                ws.status, ws.resources, ws.outputs = "INACTIVE", [], {}
        elif act["status"] == "FAILED":
            ws.status = "FAILED"

    @staticmethod
    def _masked(store: list) -> list:
        return [dict(v, value="") if v.get("secure") else dict(v) for v in store]

    def _workspace_json(self, ws: FakeWorkspace) -> dict:
        return {
            "id": ws.id,
            "name": "ephemera-gpu",
            "location": "us-south",
            "status": ws.status,
            "type": ["terraform_v1.5"],
            "workspace_status": {
                "locked": ws.locked,
                "frozen": ws.frozen,
                **({"locked_by": "someone@example.com"} if ws.locked else {}),
            },
            "workspace_status_msg": {"status_code": "", "status_msg": ""},
            "template_data": [
                {"id": ws.template_id, "folder": ".", "type": "terraform_v1.5", "variablestore": self._masked(ws.variablestore)}
            ],
        }


def start_schematics_server(workspace_id: str = "us-south.workspace.ephemera-gpu.1a2b3c4d") -> SchematicsServer:
    return SchematicsServer(workspace_id)
