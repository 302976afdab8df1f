"""Issue 11, defect 8 at the destroy side: ``stop_agent`` of an agent that is already
gone still kills the orphans of its session; a live process with the pid is left alone."""

from __future__ import annotations

import os
import subprocess
import sys

from ephemera.vm.control import kill_orphaned_session, session_members, stop_agent
from tests.helpers import wait_for


def test_orphans_of_a_dead_leader_are_killed(tmp_path):
    # a session leader that starts a helper and dies at once (as a SIGKILLed agent would)
    leader = subprocess.Popen(
        [sys.executable, "-c", "import subprocess; subprocess.Popen(['sleep', '60'])"], start_new_session=True
    )
    leader.wait()
    orphans = wait_for(lambda: session_members(leader.pid), what="the orphaned helper")
    pid_file = tmp_path / "worker-0.pid"
    pid_file.write_text(str(leader.pid))
    assert stop_agent(str(pid_file), timeout=1.0)
    assert session_members(leader.pid) == [] and not pid_file.exists(), orphans


def test_a_live_process_with_the_pid_is_not_touched():
    me = os.getpid()
    assert kill_orphaned_session(me) == []
