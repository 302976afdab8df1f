"""Wake-ups between the processes of one machine (``standalone.wake``): a client's ring
ends a VM's wait for a new job, a VM's ring ends the client's wait for a result, and
neither ring is trusted for more than where to look first."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import threading
import time
import weakref
from pathlib import Path

import pytest

import lithops_bridge as lithops
from lithops_bridge.backends.standalone import wake
from lithops_bridge.backends.standalone.backend import _Active, _hinted
from lithops_bridge.job import Job
from tests.bridge import funcs
from tests.bridge.test_server import vm  # noqa: F401 - the in-process VM fixture


@pytest.fixture
def private_tmp(monkeypatch):
    """A temporary folder of this test's own, its wake folder made under it (short: a
    socket's path has at most about 100 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="wk", dir="/tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    _forget_wake_folder()
    yield folder
    _forget_wake_folder()
    shutil.rmtree(folder, ignore_errors=True)


def _quiet_followers() -> None:
    """Wait for the followers of earlier tests in this process to end: each puts its
    bell back as it ends, into the same list a test of kept bells looks at."""
    for thread in threading.enumerate():
        backend = getattr(getattr(thread, "_target", None), "__self__", None)
        if thread.name.startswith("lithops-bridge-follow-") and backend is not None and backend._stop.is_set():
            thread.join(10)  # closed: it ends once its last job is cleaned up (one never closed never ends)


def _forget_wake_folder() -> None:
    """This process's bells start over: the folder is looked up again, and the client
    bells kept from other tests (in the folder they used) are closed."""
    _quiet_followers()
    wake.wake_dir.cache_clear()
    wake.sweep.cache_clear()
    while (kept := wake.reuse_client_bell()) is not None:
        kept.close()


def test_a_socket_path_too_long_means_no_bell(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / ("x" * 100)))
    (tmp_path / ("x" * 100)).mkdir()
    wake.wake_dir.cache_clear()
    try:
        assert wake.open_bell(wake.client_bell()) is None and wake.ring(wake.client_bell()) is False
    finally:
        wake.wake_dir.cache_clear()


def test_a_ring_ends_the_wait_and_carries_its_hint(private_tmp):
    bell = wake.open_bell(wake.client_bell())
    assert bell is not None
    assert stat.S_IMODE(os.stat(private_tmp / f"ephemera-wake-{os.getuid()}").st_mode) == 0o700
    start = time.monotonic()
    assert bell.wait(0.05) is False and time.monotonic() - start >= 0.04
    assert wake.ring(bell.name, "M000/3/1") is True
    assert bell.wait(5) is True
    assert bell.take() == [b"M000/3/1"] and bell.wait(0) is False
    bell.close()
    assert wake.ring(bell.name) is False  # nobody listens any more: no error, no wake


@pytest.mark.parametrize("name", ["/dev/log", "../../etc/x", "c-../../x", "s-abc-1", "c-" + "0" * 31, "", None, 7])
def test_only_bell_names_are_rung_never_a_path(private_tmp, name):
    """A name comes from a job or a presence: a ring must not reach any other socket (syslog's, say)."""
    assert wake.ring(name) is False
    assert wake.open_bell(name) is None if isinstance(name, str) else True


def test_a_wake_folder_other_users_can_reach_is_not_used(private_tmp):
    folder = private_tmp / f"ephemera-wake-{os.getuid()}"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    assert wake.wake_dir() is None
    assert wake.open_bell(wake.client_bell()) is None  # then everyone polls, as before


def test_a_wake_folder_that_is_a_link_is_not_used(private_tmp):
    target = private_tmp / "elsewhere"
    target.mkdir(mode=0o700)
    (private_tmp / f"ephemera-wake-{os.getuid()}").symlink_to(target)
    assert wake.wake_dir() is None


def test_bells_left_by_dead_clients_and_agents_are_swept_and_live_ones_kept(private_tmp):
    live, dead = wake.open_bell(wake.client_bell()), wake.open_bell(wake.client_bell())
    live_vm, dead_vm = wake.open_bell(wake.server_bell("b", "r", 1)), wake.open_bell(wake.server_bell("b", "r", 2))
    assert live is not None and dead is not None and live_vm is not None and dead_vm is not None
    dead._sock.close()  # killed: its socket file stays behind
    dead_vm._sock.close()
    folder = private_tmp / f"ephemera-wake-{os.getuid()}"
    (folder / "not-a-bell").write_text("")  # never touched: not a bell name
    assert sorted(os.listdir(folder)) == sorted([live.name, dead.name, live_vm.name, dead_vm.name, "not-a-bell"])
    assert wake.sweep() == 2
    assert sorted(os.listdir(folder)) == sorted([live.name, live_vm.name, "not-a-bell"])
    live.close()
    live_vm.close()


def test_hints_name_only_batches_of_the_job_they_are_for():
    job = Job("ex", "M001", b"", "f", [{}] * 4)
    act = _Active(job, [None] * 4, [(0, 1), (1, 2), (2, 3), (3, 4)], 2)
    hints = [
        b"ex-M001/2/1",
        b"ex-M001/1/03",
        b"ex-M002/0/1",
        b"ex-M001/9/1",
        b"ex-M001/-1/1",
        b"ex-M001/0/100",
        b"\xff/0/1",
        b"!",
    ]
    assert _hinted(hints, act) == {2: {1}, 1: {3}}


def test_the_vm_takes_a_job_and_the_client_its_result_on_a_ring_not_a_poll(vm):  # noqa: F811
    """Both sides poll only once a minute here: the call still comes back at once, since
    the client rings the VM's bell on submit and the VM rings the client's with the result."""
    if vm._bell is None:
        pytest.skip("no private wake folder on this machine")
    vm.poll_min = vm.poll_max = 60.0
    time.sleep(0.1)  # the server's loop is now in a minute-long wait
    config = {**vm.config, "standalone": {**vm.config["standalone"], "poll_interval": 60}}
    with lithops.FunctionExecutor(config=config) as fexec:
        start = time.monotonic()
        fut = fexec.call_async(funcs.double, 21)
        lithops.wait([fut], timeout=30)
        assert fut.result() == 42
        assert time.monotonic() - start < 20


def test_a_client_bell_is_kept_for_the_next_follower_and_its_old_rings_are_dropped(private_tmp):
    bell = wake.open_bell(wake.client_bell())
    assert bell is not None
    wake.ring(bell.name, "ex-M000/0/1")  # a late result of the follower that ends now
    wake.put_back(bell)
    assert wake.reuse_client_bell() is bell and bell.wait(0) is False  # kept, its old ring gone
    assert wake.reuse_client_bell() is None
    folder = private_tmp / f"ephemera-wake-{os.getuid()}"
    extra = [wake.open_bell(wake.client_bell()) for _ in range(wake.SPARE_BELLS + 1)]
    for b in [bell, *extra]:
        wake.put_back(b)  # type: ignore[arg-type]
    assert len(os.listdir(folder)) == wake.SPARE_BELLS  # the rest were closed, their files removed
    server = wake.open_bell(wake.server_bell("b", "r", 1))
    wake.put_back(server)  # type: ignore[arg-type]
    assert len(os.listdir(folder)) == wake.SPARE_BELLS  # a server's bell is never kept for a client
    kept = [wake.reuse_client_bell() for _ in range(wake.SPARE_BELLS)]
    for b in kept:
        b.close()  # type: ignore[union-attr]
    assert os.listdir(folder) == []


def test_a_forked_child_does_not_take_its_parents_kept_bells(private_tmp):
    bell = wake.open_bell(wake.client_bell())
    wake.put_back(bell)  # type: ignore[arg-type]
    pid = os.fork()
    if pid == 0:  # the child: nothing kept, and the parent's bell file left alone, also at its normal exit
        code = 0 if wake.reuse_client_bell() is None else 1
        weakref.finalize._exitfunc()  # type: ignore[attr-defined]  # what a normal exit runs of the finalizers
        os._exit(code)  # (os._exit only keeps pytest's own exit out of the child)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert wake.reuse_client_bell() is bell and wake.ring(bell.name)  # still the parent's, still listening
    bell.close()  # type: ignore[union-attr]


def test_back_to_back_executors_share_one_client_bell(vm):  # noqa: F811
    """A script's maps, each with its own executor: the bell of a follower that ended is
    the next one's (binding a bell creates a file, on every map)."""
    if vm._bell is None:
        pytest.skip("no private wake folder on this machine")
    _quiet_followers()
    held: set[str] = set()
    for i in range(3):
        with lithops.FunctionExecutor(config=vm.config) as fexec:
            fut = fexec.call_async(funcs.double, i)
            bell = fexec.compute_handler._bell  # the follower's, while the job is followed
            assert bell is not None
            held.add(bell.name)
            assert fexec.get_result([fut], timeout=30) == 2 * i
        follower = fexec.compute_handler._thread
        follower.join(10)  # it ends once the job is cleaned up, and puts its bell back
        assert not follower.is_alive()
    assert len(held) == 1  # one bell (one socket file) for the three executors
