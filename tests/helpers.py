"""Helpers shared by the suites that drive the real local flow: waiting, completion
markers, and the agent processes a run started. One helper per need; none of them
swallows an error it does not expect."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from uv import find_uv_bin

from ephemera.errors import NoSuchBucketError, NoSuchKeyError
from ephemera.model import marker as markers
from ephemera.vm.heartbeats import read_heartbeats
from ephemera.vm.pids import is_agent_process, read_pid


def wait_for(predicate, timeout: float = 240.0, interval: float = 0.05, what: str = "condition"):
    """Poll until ``predicate()`` is truthy (a safety net, never a timed assertion: generous, for a
    loaded 2-core machine running 3 test workers, where a local VM's boot and workload may take minutes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout:.0f}s")


def marker_written(ctx, run_id: str) -> str | None:
    """The name of the run's completion marker once written (under ``outputs/``), else None."""
    for name in markers.NAMES:
        try:
            ctx.storage.head(ctx.config.output_bucket, f"outputs/{run_id}/{name}")
            return name
        except (NoSuchKeyError, NoSuchBucketError):
            continue
    return None


def marker_event(config: dict, run_id: str, name: str = markers.SUCCESS) -> dict:
    """The params of a local bucket-write event for the run's marker."""
    return {
        "config": config,
        "ephemera_kind": "object_write",
        "bucket": config["storage"]["bucket"],
        "key": f"outputs/{run_id}/{name}",
    }


def agent_pids(home: Path) -> dict[str, int]:
    """pid file -> pid of every agent pid file under the home (live or not)."""
    found = {}
    for path in Path(home).glob("runs/*/agents/*.pid"):
        pid = read_pid(str(path))
        if pid:
            found[str(path)] = pid
    return found


def live_agents(home: Path, extra_pids=()) -> list[int]:
    """The agent processes still alive among those of the home's pid files and ``extra_pids``."""
    pids = set(agent_pids(home).values()) | set(extra_pids)
    return sorted(pid for pid in pids if is_agent_process(pid))


def heartbeat_pids(ctx) -> set[int]:
    """Every agent pid that has heartbeated for any run of the context's state bucket."""
    pids = set()
    for run in ctx.ledger.list():
        for beat in read_heartbeats(ctx.storage, ctx.config.state_bucket, run.run_id):
            if isinstance(beat.pid, int):
                pids.add(beat.pid)
    return pids


def pip_venv(root: Path, python: str = sys.executable) -> Path:
    """A fresh venv at ``root`` holding pip and setuptools, what ``python -m venv`` gives on 3.11,
    made by uv: ensurepip byte-compiles pip (15-25 s on a busy 2-core machine, ~1 s this way).
    For tests about what pip does in a clean environment, not about how the venv was made; its python."""
    uv = find_uv_bin()
    subprocess.run([uv, "venv", "-q", "--python", python, str(root)], check=True, capture_output=True)
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(root / "bin" / "python"), "pip", "setuptools"],
        check=True,
        capture_output=True,
    )
    return root / "bin" / "python"
