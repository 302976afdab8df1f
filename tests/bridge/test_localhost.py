"""The localhost backend's pools: workers die with their parent; a private pool is never
shut down under a job that is being submitted."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import lithops_bridge as lithops
from lithops_bridge.backends.localhost.backend import LocalhostBackend
from lithops_bridge.config import default_config, extract_storage_config
from lithops_bridge.futures import ResponseFuture
from lithops_bridge.job import Job, serialize_function
from tests.bridge import funcs


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_pool_workers_exit_when_their_parent_is_killed(tmp_path):
    script = textwrap.dedent("""
        import os, signal, sys
        from lithops_bridge.backends.localhost.backend import shared_pool
        pool = shared_pool(2)
        pids = {pool.submit(os.getpid).result() for _ in range(20)}
        print(" ".join(str(p) for p in sorted(pool._processes)), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # a session killed hard: no cleanup runs
    """)
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    workers = [int(p) for p in proc.stdout.split()]
    assert len(workers) == 2, proc.stderr
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not [p for p in workers if _alive(p)], "pool workers outlived their parent"


def test_a_private_pool_is_not_shut_down_under_a_job_being_submitted():
    """A previous job's last batch finishing while submit takes the pool must not close it."""
    config = default_config(config_data={"lithops": {"backend": "localhost"}, "localhost": {"worker_processes": 2}})
    backend = LocalhostBackend(config, extract_storage_config(config))
    backend.private = True  # as inside a pool worker (a nested executor)
    backend._outstanding = 1  # a batch of an earlier job is still running
    original = backend._get_pool

    def racing_get_pool():
        pool = original()
        t = threading.Thread(target=backend._release)  # ...and it finishes right now
        t.start()
        t.join(0.5)  # with the lock it waits for submit to count its batches; without, it closes the pool
        racing_get_pool.threads.append(t)
        return pool

    racing_get_pool.threads = []
    backend._get_pool = racing_get_pool
    job = Job("race", "M000", serialize_function(funcs.double), "double", [{"x": i} for i in range(4)])
    futures = [ResponseFuture("race", "M000", i) for i in range(4)]
    backend.submit(job, futures)
    for t in racing_get_pool.threads:
        t.join()
    assert lithops.get_result(futures, timeout=30) == [0, 2, 4, 6]
    backend.close()
