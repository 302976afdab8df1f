"""The two records a VM boots from: its *boot document* (the controller's, one per VM)
and the *agent config* (the VM's own, built from the boot document by the bootstrap's
second stage, :mod:`ephemera.vm.boot`, or by :class:`ephemera.vm.localrun.LocalRun`).

The boot document is written by :mod:`ephemera.bundle.delivery`, completed by the
stack (cloud-init's ``merge`` in ``terraform/ibm-vpc-gpu/modules/user-data``; the
Terraform engine for the ``local`` stack), and read first by the stdlib-only
:mod:`ephemera.vm.bootstrap`, which is shipped to the VM as one file and so keeps it a
plain dict: :class:`BootDocument` is the documented shape of that dict (the bootstrap
imports it only when a type checker runs). The agent config is a dataclass,
:class:`AgentConfig`, with one ``to_json``/``from_json``; the agent reads only it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any, TypedDict

from ephemera.errors import AgentConfigError, BootDocumentError

BOOT_FORMAT = 1  # the boot document's ``format``


class ObjectRef(TypedDict, total=False):
    bucket: str  # default: the state bucket
    key: str
    url: str | None  # a presigned URL; None on a VM with an identity


class WheelhouseRef(ObjectRef, total=False):
    sha256: str  # informational: the VM checks the tar against the (hash-checked) bundle manifest's sha256, then each wheel against the lock
    size: int


class BundleRef(ObjectRef, total=False):
    sha256: str  # checked before the bundle is unpacked
    size: int
    wheelhouse: (
        WheelhouseRef | None
    )  # the wheels its lock pins (cloud VMs: all of requirements.lock; local VMs: what the controller lacks); None: none packed


class ImageRef(TypedDict):
    id: str  # the prepared image (ephemera.bundle.image)
    path: str | None  # local: its folder, inside the home's image store
    site: str | None  # local: its site-packages, relative to path
    digest: str | None  # local: the folder's tree digest, checked before it is used
    env: str | None  # cloud: the environment the image builder installed the lock into
    lock_sha256: str | None  # cloud: the lock it must hold (its builder's marker, and the bundle's lock)


class CredentialsRef(TypedDict):
    url: str  # presigned GET of the one-time credentials object (lives minutes)
    delete_url: str  # presigned DELETE of it: read once
    expires_in: int  # seconds the URLs live


class GPUPromise(TypedDict, total=False):
    count: int  # GPUs the instance profile promises (0: none)
    model: str | None  # e.g. "L4"; None or "" when unknown


class ControllerBootFields(TypedDict):
    """The boot document's fields the controller writes (``bundle.delivery``): always present."""

    format: int  # BOOT_FORMAT
    run_id: str
    worker: int  # this VM's index (0 runs the workload)
    worker_count: int
    state_bucket: str
    storage: dict[str, Any]  # {"backend": name, name: the section without keys}
    identity: dict[str, Any] | None  # the VM's identity (IBM trusted profile), None: credentials by URL
    extras: list[str]  # Ephemera extras the storage's VMs need
    hard_deadline: str  # ISO time
    entry: str  # the workload's "module:function"
    run_key: str  # a secret (ephemera.runkeys): the stack's variable holding documents is sensitive
    bundle: BundleRef
    marker: ObjectRef  # the run's failure marker, for a bootstrap that fails before Ephemera runs
    credentials: CredentialsRef | None  # one-time storage keys for a VM without identity
    image: ImageRef | None  # the prepared image the VM starts from, None: the stock install


class BootDocument(ControllerBootFields, total=False):
    """A VM's boot document (JSON): the controller's fields, and those the stack merges over
    them (cloud-init's merge, or the Terraform engine for local VMs), each optional."""

    root: str  # where the VM's environment and state live (default /opt/ephemera)
    python: str  # the interpreter that creates the environment
    uv: str  # the uv binary, where the image has one
    setup: str | None  # a setup script run once (packages, driver, uv)
    reboot: list[str]  # the command that reboots the VM (once, to load a GPU driver)
    gpu: GPUPromise
    heartbeat_interval: float  # seconds between the agent's heartbeats
    agent_pid_file: str
    inherit_site: list[str]  # local VMs: the controller's site-packages, seen through a .pth
    offline: bool  # local VMs: install with --no-index
    preemption: dict[str, Any]  # where the agent watches for a spot preemption notice: {"source": "aws"|"ibm"|"local", ...}


_BOOT_FIX = (
    "the controller writes every one of these fields: apply the run again with this version of Ephemera "
    "(a stack merges its own fields over the document, never replaces it)"
)
_AGENT_FIX = "the VM's boot (python -m ephemera.vm boot) or LocalRun writes it: start the VM again rather than editing it"
REQUIRED_BOOT_FIELDS = {"run_id": str, "worker": int, "state_bucket": str, "storage": dict, "bundle": dict, "marker": dict}


def boot_to_json(doc: BootDocument) -> bytes:
    return json.dumps(doc, sort_keys=True).encode()


def boot_from_json(data: bytes | str) -> BootDocument:
    """The boot document in ``data``; BootDocumentError naming the first missing or mistyped field."""
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise BootDocumentError("(document)", f"is not JSON ({exc})", _BOOT_FIX) from None
    if not isinstance(raw, dict):
        raise BootDocumentError("(document)", "is not a JSON object", _BOOT_FIX)
    for name, kind in REQUIRED_BOOT_FIELDS.items():
        if not isinstance(raw.get(name), kind) or isinstance(raw.get(name), bool):
            raise BootDocumentError(name, f"is missing or not a {kind.__name__}", _BOOT_FIX)
    return raw  # type: ignore[return-value]  # checked above: a plain dict of this shape


@dataclass
class AgentConfig:
    """``agent.json`` (mode 0600): what a VM's agent runs with."""

    run_id: str  # the run this VM serves
    config: dict[str, Any]  # the VM's Ephemera config (its storage section; a secret where it holds keys)
    run_key: str = ""  # the run's key (ephemera.runkeys): checks the job spec, seals the bridge's objects; a secret
    heartbeat_interval: float = 5.0  # seconds between heartbeats
    log_interval: float = 3.0  # seconds between log uploads
    worker_processes: int | None = None  # processes serving calls; None: the CPU count (shared on one host)
    use_gpu: bool | None = None  # None: whether an NVIDIA device exists
    state_file: str | None = None  # a booted VM: the bootstrap's state (phases, GPU report)
    workdir: str | None = None  # a booted VM: the bundle's workload source, the workload's cwd
    preemption: dict[str, Any] | None = None  # the preemption notice source (ephemera.vm.preemption); None: none watched

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, indent=1)

    @classmethod
    def from_json(cls, data: bytes | str) -> "AgentConfig":
        """The config in ``data`` (keys this version does not know are ignored);
        AgentConfigError naming the field that is missing or malformed."""
        try:
            raw = json.loads(data)
        except ValueError as exc:
            raise AgentConfigError("(file)", f"is not JSON ({exc})", _AGENT_FIX) from None
        if not isinstance(raw, dict):
            raise AgentConfigError("(file)", "is not a JSON object", _AGENT_FIX)
        if not isinstance(raw.get("run_id"), str) or not raw["run_id"]:
            raise AgentConfigError("run_id", "is missing or not a string", _AGENT_FIX)
        if not isinstance(raw.get("config"), dict):
            raise AgentConfigError("config", "is missing or not an object", _AGENT_FIX)
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known and v is not None}
        for name in ("heartbeat_interval", "log_interval"):
            if name in values and (isinstance(values[name], bool) or not isinstance(values[name], (int, float))):
                raise AgentConfigError(name, f"is {values[name]!r}, not a number of seconds", _AGENT_FIX)
        values["run_key"] = values.get("run_key") or ""
        return cls(**values)
