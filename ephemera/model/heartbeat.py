"""A VM's heartbeat: the record each VM's agent (and, before it, the bootstrap's second
stage) rewrites every few seconds, and the controller reads to tell a live VM from a
silent one and where its boot stands (:mod:`ephemera.vm.heartbeats` stores and reads it).

Wire format (JSON, one object per VM, unchanged since the first agents): ``run_id``,
``worker``, ``at`` (ISO time of the write), ``state`` (a :class:`VMState`), ``pid``,
``python``, ``worker_processes``, ``phases`` (:class:`VMPhase` value -> ISO time),
``gpu`` (the GPU report, :mod:`ephemera.vm.gpu`), and, flat beside them, whatever the
VM services add (the bridge: ``pool_ready``), kept in :attr:`Heartbeat.services`.

A spot VM that got its platform's preemption notice (:mod:`ephemera.vm.preemption`)
says so at once: state and phase ``preempted``, and the service field ``preemption``
(:data:`PREEMPTION_FIELD`) = ``{"notice_at": ISO, "source": "aws"|"ibm"|"local",
"action": what the metadata said, e.g. "terminate", "stop", "delete"}``. A preemption is
an event, not a failure: such a VM writes no failure marker, and the controller recovers
the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any


class VMState(str, Enum):
    """What a VM says it is doing."""

    STARTING = "starting"  # the agent is starting its services
    BOOTING = "booting"  # the bootstrap's second stage (GPU proved, agent next)
    REBOOTING = "rebooting"  # a planned reboot to load the GPU driver: silent for minutes
    RUNNING = "running"  # worker 0 runs the workload
    IDLE = "idle"  # serving (workers > 0), or the workload is done
    STOPPED = "stopped"  # the agent stopped: no marker can come from it any more
    PREEMPTED = "preempted"  # the platform reclaims this spot VM (notice received): it is going away


class VMPhase(str, Enum):
    """A step of a VM's boot and work, stamped once with its time (the first stamp stays)."""

    BOOTED = "booted"  # the bootstrap started
    CREDENTIALS_FETCHED = "credentials_fetched"  # the one-time credentials object read (VMs without identity)
    SETUP_DONE = "setup_done"  # the stack's setup script ran
    BUNDLE_INSTALLED = "bundle_installed"  # the run's bundle installed
    IMAGE_USED = "image_used"  # the VM's environment is over the prepared image its boot document names
    IMAGE_REJECTED = "image_rejected"  # that image was missing or altered: the stock install instead
    REBOOTING = "rebooting"  # went down once to load the GPU driver
    DRIVER_READY = "driver_ready"  # the promised GPUs proved
    AGENT_READY = "agent_ready"  # the agent serves
    FIRST_TASK = "first_task"  # the workload started
    LAST_TASK = "last_task"  # the workload ended
    PREEMPTED = "preempted"  # the platform's preemption notice arrived (stamped at the notice time)


# the phases the run record and the CLI report, in boot order
REPORTED_PHASES = (
    VMPhase.BOOTED,
    VMPhase.BUNDLE_INSTALLED,
    VMPhase.DRIVER_READY,
    VMPhase.AGENT_READY,
    VMPhase.FIRST_TASK,
    VMPhase.LAST_TASK,
)


PREEMPTION_FIELD = "preemption"  # the service field a preempted VM's heartbeat carries
PREEMPTION_SOURCES = ("aws", "ibm", "local")  # who gave the notice


def preemption_of(beat: "Heartbeat") -> dict | None:
    """The ``preemption`` record of a heartbeat (notice_at, source, action), or None
    when the VM has had no notice (or the field is malformed)."""
    raw = beat.services.get(PREEMPTION_FIELD)
    if not isinstance(raw, dict) or not isinstance(raw.get("notice_at"), str):
        return None
    return {"notice_at": raw["notice_at"], "source": str(raw.get("source", "")), "action": str(raw.get("action", ""))}


class HeartbeatInvalid(ValueError):
    """A stored heartbeat lacks a field every writer sets (readers skip it)."""


@dataclass
class Heartbeat:
    run_id: str  # the run the VM belongs to
    worker: int  # the VM's index in the run (0 runs the workload)
    at: str = ""  # ISO time of the write (set by write_heartbeat)
    state: VMState | None = None  # None: a state this version does not know
    pid: int | None = None  # the process that wrote it
    python: str | None = None  # the interpreter the agent runs
    worker_processes: int | None = None  # processes serving calls on this VM
    phases: dict[str, str] = field(default_factory=dict)  # VMPhase value -> ISO time (a newer VM may send others)
    gpu: dict | None = None  # the GPU report (model, driver, CUDA versions), once proved
    services: dict[str, Any] = field(default_factory=dict)  # what VM services add, flat on the wire

    def to_dict(self) -> dict:
        raw: dict[str, Any] = {
            **self.services,
            "run_id": self.run_id,
            "worker": self.worker,
            "at": self.at,
            "phases": dict(self.phases),
        }
        if self.state is not None:
            raw["state"] = self.state.value
        for name in ("pid", "python", "worker_processes", "gpu"):
            if getattr(self, name) is not None:
                raw[name] = getattr(self, name)
        return raw

    @classmethod
    def from_dict(cls, raw: dict) -> "Heartbeat":
        """The heartbeat in ``raw``; HeartbeatInvalid without a string run_id and at, or an int worker."""
        for name, kind in (("run_id", str), ("worker", int), ("at", str)):
            if not isinstance(raw.get(name), kind) or isinstance(raw.get(name), bool):
                raise HeartbeatInvalid(f"heartbeat field '{name}' is missing or not a {kind.__name__}")
        known = {f.name for f in fields(cls)}
        state = raw.get("state")
        phases = raw.get("phases")
        return cls(
            run_id=raw["run_id"],
            worker=raw["worker"],
            at=raw["at"],
            state=VMState(state) if state in VMState._value2member_map_ else None,
            pid=raw.get("pid"),
            python=raw.get("python"),
            worker_processes=raw.get("worker_processes"),
            phases={str(k): v for k, v in phases.items() if isinstance(v, str)} if isinstance(phases, dict) else {},
            gpu=raw.get("gpu") if isinstance(raw.get("gpu"), dict) else None,
            services={k: v for k, v in raw.items() if k not in known},
        )

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict()).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> "Heartbeat":
        raw = json.loads(data)
        if not isinstance(raw, dict):
            raise HeartbeatInvalid("a heartbeat is a JSON object")
        return cls.from_dict(raw)
