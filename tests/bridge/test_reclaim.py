"""Calls that outlive a lost VM: a VM whose agent dies (killed, or frozen and back
late) has its claimed calls taken over by another VM of the run, and every call gets
exactly one result, from its latest claim."""

from __future__ import annotations

import os
import signal
import time

import pytest

import lithops_bridge as lithops
from ephemera.vm.localrun import LocalRun
from ephemera.vm.pids import read_pid
from lithops_bridge.backends.standalone import keys, slots
from lithops_bridge.errors import BridgeError
from tests.bridge import funcs
from tests.bridge.conftest import pid_alive

pytestmark = pytest.mark.slow


@pytest.fixture
def two_vms(tmp_path):
    run = LocalRun(tmp_path / "run", workers=2, worker_processes=2, heartbeat_interval=0.5).start().wait_ready()
    yield run
    pids = run.pids()
    for pid in pids:  # a frozen agent must be able to stop
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    run.close()
    assert not [p for p in pids if pid_alive(p)], "an agent outlived the test"


def _events(path) -> list[tuple[int, str, str]]:
    if not path.exists():
        return []
    return [(int(c), vm, what) for c, vm, what in (line.split() for line in path.read_text().splitlines())]


def _wait(predicate, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_killed_agents_calls_finish_on_the_other_vm(two_vms, tmp_path):
    """VM 1's agent is killed (SIGKILL, as a preempted VM) while it runs calls of a map:
    its calls die with it, VM 2 takes them over once VM 1's presence is silent, and the
    map completes with one result per call."""
    log = tmp_path / "calls.log"
    config = two_vms.lithops_config
    with lithops.FunctionExecutor(config=config) as fexec:
        fs = fexec.map(funcs.logged_sleep, [(str(log), i, 3.0) for i in range(8)], chunksize=1)
        _wait(lambda: any(vm == "vm-1" and what == "start" for _c, vm, what in _events(log)), what="vm-1 to start a call")
        agent = read_pid(two_vms.pid_file(1))
        os.kill(agent, signal.SIGKILL)
        started_on_vm1 = {c for c, vm, what in _events(log) if vm == "vm-1" and what == "start"}
        results = fexec.get_result(fs, timeout=120)
    assert [c for c, _vm in results] == list(range(8))  # one result per call, in order
    events = _events(log)
    assert started_on_vm1 and not [c for c in started_on_vm1 if (c, "vm-1", "end") in events]  # died with the agent
    for call in started_on_vm1:
        assert results[call] == (call, "vm-2") and fs[call].stats["worker_host"] == "vm-2"
        assert (call, "vm-2", "start") in events and (call, "vm-2", "end") in events  # run again on the other VM
    assert not pid_alive(agent)


def test_a_chunk_lost_mid_way_is_taken_over_whole(two_vms, tmp_path):
    """VM 1's agent dies in the middle of a chunk (calls of one batch run one after the
    other on one process): a chunk's results are written once, when it ends, so the
    calls VM 1 had finished are lost with it. VM 2 takes the whole chunk over; every
    call of the map gets exactly one result, VM 2's, and the chunk's slots read claim
    (VM 1), claim (VM 2), result (VM 2)."""
    log = tmp_path / "calls.log"
    config = two_vms.lithops_config
    with lithops.FunctionExecutor(config=config) as fexec:
        fs = fexec.map(funcs.logged_sleep, [(str(log), i, 0.4) for i in range(16)], chunksize=4)

        def vm1_mid_chunk() -> bool:
            ended = {c for c, vm, w in _events(log) if vm == "vm-1" and w == "end"}
            return any(c + 1 in {s for s, vm, w in _events(log) if vm == "vm-1" and w == "start"} and c % 4 != 3 for c in ended)

        _wait(vm1_mid_chunk, what="vm-1 to finish a call and start the next of the same chunk")
        agent = read_pid(two_vms.pid_file(1))
        os.kill(agent, signal.SIGKILL)
        events = _events(log)
        finished_on_vm1 = {c for c, vm, w in events if vm == "vm-1" and w == "end"}
        lost = {c // 4 for c, vm, w in events if vm == "vm-1" and w == "start" and (c, "vm-1", "end") not in events}
        results = fexec.get_result(fs, timeout=120)
        store, run, jk = fexec.compute_handler.store, two_vms.run_id, fs[0].job_key
        bodies = {  # read while the job is open: closing the executor cleans its objects up
            chunk: [
                slots.read(store, two_vms.bucket, keys.slot_key(run, jk, chunk, s), fexec.compute_handler.seal) for s in range(4)
            ]
            for chunk in lost
        }
    assert [c for c, _vm in results] == list(range(16))  # none lost, one result each, in order
    assert lost and not pid_alive(agent)
    assert any(c // 4 in lost for c in finished_on_vm1)  # a chunk died mid-way: some of its calls had ended
    for chunk in lost:
        calls = range(4 * chunk, 4 * chunk + 4)
        assert [results[c] for c in calls] == [(c, "vm-2") for c in calls]  # the whole chunk, from VM 2
        assert [(b or {}).get("kind") for b in bodies[chunk]] == ["claim", "claim", "result", None]
        assert [b["worker"] for b in bodies[chunk][:3]] == [1, 2, 2]
    events = _events(log)
    for c in range(16):  # VM 2 ran each call at most once; a call of a chunk VM 1 kept ran on VM 1 only
        assert [vm for cc, vm, w in events if cc == c and w == "end"].count("vm-2") <= 1


def test_a_late_result_from_the_first_claimer_is_ignored(two_vms, tmp_path):
    """VM 1's agent freezes (SIGSTOP) while its calls run; VM 2 takes them over and
    answers; when VM 1 comes back (SIGCONT) its results find the next slot taken and are
    dropped: the futures keep VM 2's results, and the batch's slots read claim (VM 1),
    claim (VM 2), result (VM 2)."""
    log = tmp_path / "calls.log"
    config = two_vms.lithops_config
    config["standalone"]["worker_processes"] = 2
    gate = tmp_path / "gate"
    # one job of four single-call batches: VMs start at batches 0 and 2, two at a time; call 3
    # runs until the gate opens, so the job stays open while VM 1 comes back
    args = [(str(log), 0, 2.0), (str(log), 1, 2.0), (str(log), 2, 0.5), (str(log), 3, str(gate))]
    with lithops.FunctionExecutor(config=config) as fexec:
        fs = fexec.map(funcs.logged_sleep_or_gate, args, chunksize=1)
        _wait(lambda: len({c for c, _vm, w in _events(log) if w == "start"}) == 4, what="all four calls to start")
        frozen = {c for c, vm, w in _events(log) if vm == "vm-1" and w == "start"}
        assert frozen and 3 not in frozen, _events(log)
        agent = read_pid(two_vms.pid_file(1))
        os.kill(agent, signal.SIGSTOP)
        try:
            lithops.wait([fs[c] for c in frozen], timeout=90)
            for call in frozen:
                assert fs[call].result() == (call, "vm-2")
            _wait(lambda: all((c, "vm-1", "end") in _events(log) for c in frozen), what="VM 1's calls to end")
        finally:
            os.kill(agent, signal.SIGCONT)
        agent_log = two_vms.log_file(1)
        _wait(
            lambda: open(agent_log).read().count("are dropped: another VM took them over") >= len(frozen),
            what="VM 1 to find its results superseded",
        )
        store, run, jk = fexec.compute_handler.store, two_vms.run_id, fs[0].job_key
        assert not fs[3].done  # the job is still open: nothing was cleaned up under VM 1's late writes
        for call in frozen:
            bodies = [
                slots.read(store, two_vms.bucket, keys.slot_key(run, jk, call, s), fexec.compute_handler.seal) for s in range(4)
            ]
            assert [(b or {}).get("kind") for b in bodies] == ["claim", "claim", "result", None]
            assert [b["worker"] for b in bodies[:3]] == [1, 2, 2]
        gate.touch()
        assert [c for c, _vm in fexec.get_result(fs, timeout=90)] == [0, 1, 2, 3]
        for call in frozen:
            assert fs[call].result() == (call, "vm-2")  # still VM 2's


def test_calls_fail_once_their_attempts_are_used(tmp_path):
    """``standalone.retries: 0``: a dead VM's calls are not taken over; once the client
    gives up on that VM they fail with BridgeError naming the attempts."""
    run = LocalRun(tmp_path / "run", workers=2, worker_processes=1, heartbeat_interval=0.5).start().wait_ready()
    try:
        config = run.lithops_config
        config["standalone"]["retries"] = 0
        log = tmp_path / "calls.log"
        with lithops.FunctionExecutor(config=config) as fexec:
            fexec.compute_handler.stale_after = 3.0  # give up on a silent VM sooner than the default 30 s
            fexec.compute_handler.check_every = 0.5
            fs = fexec.map(funcs.logged_sleep, [(str(log), i, 60.0) for i in range(2)], chunksize=1)
            _wait(lambda: {vm for _c, vm, w in _events(log) if w == "start"} == {"vm-1", "vm-2"}, what="both VMs")
            [on_vm1] = [c for c, vm, w in _events(log) if vm == "vm-1"]
            os.kill(read_pid(run.pid_file(1)), signal.SIGKILL)
            with pytest.raises(BridgeError, match=r"tried 1 times \(standalone.retries = 0\)"):
                fs[on_vm1].result()
    finally:
        run.close()
