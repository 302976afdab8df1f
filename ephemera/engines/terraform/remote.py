"""Workspaces' Terraform state in S3, locked by Terraform's native S3 lock file.

With ``terraform.state.backend = "s3"`` each working directory gets two files next to
the stack's: ``ephemera_backend_override.tf`` (``terraform { backend "s3" {} }``) and
``ephemera.s3.tfbackend``, the backend's settings (bucket, the workspace's key, region,
``use_lockfile = true``, an endpoint where one is set), which ``terraform init`` reads
through ``-backend-config=<file>`` (:mod:`ephemera.engines.terraform.runners`). Neither
holds a credential: the backend takes them from the AWS default chain (the function's
role, the environment), as the ``hashicorp/aws`` provider does.

Terraform's S3 backend locks a state by writing ``<key>.tflock`` with a conditional
PutObject (``If-None-Match: *``): a second writer gets 412 Precondition Failed and
Terraform says "Error acquiring the state lock", which the engine reports as
:class:`~ephemera.errors.WorkspaceBusyError`. :meth:`RemoteStates.forget` takes the same
lock the same way before it deletes an emptied workspace's objects, so it never
deletes a state a Terraform run holds.

A destroy may run where the apply did not (another Lambda sandbox), without the
apply's variables file; Terraform still wants a value for every required variable.
So an apply also keeps the variables the stack does not mark sensitive beside the
state (``ephemera.variables.json``), and a destroy without the file gives each
sensitive one an empty value of its type (a ``list(string)``, the per-VM boot
documents, gets one empty boot document, base64 ``{}``, per worker, as a stack may
index and decode it): a destroy reads what to delete from the state, and no secret
is ever written to the bucket.

Ephemera reads what it needs (outputs, resources, the workspaces, their owners)
straight from the bucket, through the ``aws_s3`` storage client; every key comes from
:mod:`ephemera.layout`.
"""

from __future__ import annotations

import base64
import json
import socket
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from ephemera import layout
from ephemera.engines.terraform.config import S3State
from ephemera.engines.terraform.runners import BACKEND_FILE
from ephemera.errors import EngineError, NoSuchKeyError
from ephemera.timeutil import now_iso

if TYPE_CHECKING:
    from ephemera.stack import StackSpec
    from ephemera.storage.aws_s3.backend import S3Storage

BACKEND_TF = "ephemera_backend_override.tf"  # Terraform merges *_override.tf into the configuration
_BACKEND_BLOCK = 'terraform {\n  backend "s3" {}\n}\n'
_EMPTY = {"string": "", "number": 0, "bool": False, "map(string)": {}, "object": {}}  # other types: []
_EMPTY_DOCUMENT = base64.b64encode(b"{}").decode()  # an empty boot document, in the vm_boot encoding


def backend_settings(state: S3State, workspace: str) -> str:
    """The ``.tfbackend`` text of one workspace's state (HCL attributes; no credential)."""
    lines = {
        "bucket": json.dumps(state.bucket),
        "key": json.dumps(layout.tf_state_key(state.prefix, workspace)),
        "region": json.dumps(state.region),
        "use_lockfile": "true",
        "encrypt": "true",
    }
    if state.endpoint:
        # an S3-compatible server: path-style URLs, and no AWS-only lookups (STS, IMDS, account id)
        lines.update(
            {
                "endpoints": "{ s3 = " + json.dumps(state.endpoint) + " }",
                "use_path_style": "true",
                "skip_credentials_validation": "true",
                "skip_requesting_account_id": "true",
                "skip_metadata_api_check": "true",
                "skip_region_validation": "true",
            }
        )
    return "".join(f"{name} = {value}\n" for name, value in lines.items())


def write_backend(state: S3State, workspace: str, workdir: Path) -> None:
    """Put the backend block and its settings file into ``workdir``."""
    (workdir / BACKEND_TF).write_text(_BACKEND_BLOCK)
    (workdir / BACKEND_FILE).write_text(backend_settings(state, workspace))


class RemoteStates:
    """The workspaces' objects in the state bucket: state, lock and owner."""

    def __init__(self, state: S3State, storage: S3Storage | None = None):
        self.state = state
        self._storage = storage

    @property
    def storage(self) -> S3Storage:
        if self._storage is None:
            from ephemera.storage.aws_s3.backend import S3Storage  # cloud SDK: boto3 only when remote state is read
            from ephemera.storage.aws_s3.config import S3Settings  # cloud SDK: with the client above

            self._storage = S3Storage(S3Settings(endpoint=self.state.endpoint, region=self.state.region))
        return self._storage

    def _get(self, key: str) -> bytes | None:
        try:
            return self.storage.get(self.state.bucket, key)
        except NoSuchKeyError:
            return None

    def read(self, workspace: str) -> dict:
        """The workspace's state document, {} when it has none."""
        data = self._get(layout.tf_state_key(self.state.prefix, workspace))
        if not data or not data.strip():
            return {}
        try:
            return json.loads(data)
        except ValueError as exc:
            key = layout.tf_state_key(self.state.prefix, workspace)
            raise EngineError(
                f"state of workspace '{workspace}' is unreadable ({exc}); inspect s3://{self.state.bucket}/{key}"
            ) from None

    def locked(self, workspace: str) -> bool:
        """True while a Terraform run (or :meth:`forget`) holds the workspace's lock file."""
        return self.lock_age(workspace) is not None

    def lock_age(self, workspace: str) -> float | None:
        """Seconds since the workspace's lock file was written, None when there is none."""
        try:
            info = self.storage.head(self.state.bucket, layout.tf_lock_key(self.state.prefix, workspace))
        except NoSuchKeyError:
            return None
        return max(0.0, (datetime.now(timezone.utc) - info.last_modified).total_seconds())

    def break_lock(self, workspace: str) -> None:
        """Delete the lock file a dead action left (what `terraform force-unlock` does)."""
        self.storage.delete(self.state.bucket, layout.tf_lock_key(self.state.prefix, workspace))

    def owner(self, workspace: str) -> str | None:
        data = self._get(layout.tf_owner_key(self.state.prefix, workspace))
        try:
            owner = json.loads(data).get("run_id") if data else None
        except (ValueError, AttributeError):
            return None
        return str(owner) if owner else None

    def set_owner(self, workspace: str, run_id: str | None) -> None:
        key = layout.tf_owner_key(self.state.prefix, workspace)
        if run_id is None:
            self.storage.delete(self.state.bucket, key)
        else:
            self.storage.put(self.state.bucket, key, json.dumps({"run_id": run_id}).encode())

    def save_variables(self, workspace: str, values: dict, stack: StackSpec) -> None:
        """Keep the workspace's variables that the stack does not mark sensitive."""
        plain = {k: v for k, v in stack.takes(values).items() if not stack.variables[k].sensitive}
        self.storage.put(self.state.bucket, layout.tf_variables_key(self.state.prefix, workspace), json.dumps(plain).encode())

    def destroy_variables(self, workspace: str, stack: StackSpec) -> dict:
        """The kept variables, and an empty value of its type for each required sensitive one."""
        data = self._get(layout.tf_variables_key(self.state.prefix, workspace))
        values = json.loads(data) if data else {}
        for name, spec in stack.variables.items():
            if spec.sensitive and spec.required and name not in values:
                workers = values.get("worker_count", 1)
                values[name] = [_EMPTY_DOCUMENT] * int(workers) if spec.type == "list(string)" else _EMPTY.get(spec.type, [])
        return stack.takes(values)

    def workspaces(self) -> list[str]:
        """Every workspace with a state or an owner under the prefix."""
        root = layout.tf_states_prefix(self.state.prefix)
        names = set()
        for info in self.storage.list(self.state.bucket, root):
            name, _, rest = info.key[len(root) :].partition("/")
            if name and rest:
                names.add(name)
        return sorted(names)

    def forget(self, workspace: str) -> str:
        """Delete the objects of a workspace whose state holds no resource, under its lock
        (the lock file Terraform writes, taken the same way): "deleted", "kept" (the state
        holds resources) or "busy" (a Terraform run holds the lock)."""
        lock = layout.tf_lock_key(self.state.prefix, workspace)
        info = {"ID": str(uuid.uuid4()), "Operation": "ephemera-forget", "Who": socket.gethostname(), "Created": now_iso()}
        if not self.storage.put_if_absent(self.state.bucket, lock, json.dumps(info).encode()):
            return "busy"
        try:
            if any(r.get("mode") == "managed" and r.get("instances") for r in self.read(workspace).get("resources", [])):
                return "kept"
            self.storage.delete(self.state.bucket, layout.tf_state_key(self.state.prefix, workspace))
            self.storage.delete(self.state.bucket, layout.tf_owner_key(self.state.prefix, workspace))
            self.storage.delete(self.state.bucket, layout.tf_variables_key(self.state.prefix, workspace))
            return "deleted"
        finally:
            self.storage.delete(self.state.bucket, lock)
