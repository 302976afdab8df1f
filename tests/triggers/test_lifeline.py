"""Issue 11, defect 7: action processes die with the runtime that started them.

The runtime (here a small driver process standing in for ``ephemera up``) starts an
action that sleeps and has started a grandchild; the runtime is SIGKILLed. The action
and its grandchild must be gone soon after, for fresh (cold) and warm action processes
alike -- not run on unsupervised past ``timeouts.action``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import wait_for

REPO = Path(__file__).resolve().parents[2]
DRIVER = textwrap.dedent("""
    import json, sys
    mode, params = sys.argv[1], json.loads(sys.argv[2])
    target = "tests.triggers.sample_actions:sleep"
    if mode == "cold":
        from ephemera.runtime.procio import child_env, run_cold
        run_cold(target, params, 120, env=child_env())
    else:
        from ephemera.runtime.procio import child_env
        from ephemera.runtime.warmpool import WarmPool, run_warm
        pool = WarmPool(target, child_env(), size=1)
        run_warm(pool, params, 120, {})
""")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("mode", ["cold", "warm"])
def test_action_and_its_children_die_with_a_killed_runtime(tmp_path, mode):
    pid_file = tmp_path / "pids.json"
    params = {"seconds": 120, "spawn_grandchild": True, "pid_file": str(pid_file)}
    runtime = subprocess.Popen(
        [sys.executable, "-c", DRIVER, mode, json.dumps(params)], cwd=REPO, stdin=subprocess.DEVNULL, start_new_session=True
    )
    try:
        pids = wait_for(
            lambda: pid_file.exists() and pid_file.stat().st_size and json.loads(pid_file.read_text()),
            timeout=60,
            what="the action's pids",
        )
        assert all(alive(p) for p in pids)
        runtime.send_signal(signal.SIGKILL)
        runtime.wait()
        wait_for(lambda: not any(alive(p) for p in pids), timeout=15, what="the action and its grandchild gone")
    finally:
        for pid in json.loads(pid_file.read_text()) if pid_file.exists() and pid_file.stat().st_size else []:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        if runtime.poll() is None:
            runtime.kill()


def test_interrupted_invocation_is_recorded_on_restart(tmp_path, local_config):
    """The runtime dies during an invocation (no record written); the next runtime's
    start stores it as ``interrupted``, and a finished invocation leaves no start note."""
    from ephemera import layout
    from ephemera.context import Context
    from ephemera.runtime.activations import complete_interrupted, list_activations

    config = local_config()
    ctx = Context(config)
    pid_file = tmp_path / "pids.json"
    params = {"seconds": 120, "pid_file": str(pid_file)}
    driver = textwrap.dedent("""
        import json, sys
        from ephemera.context import Context
        from ephemera.runtime.invoker import Invoker
        ctx = Context(json.loads(sys.argv[1]))
        inv = Invoker(ctx.storage, ctx.config.state_bucket, timeout=120, warm=False)
        inv.submit(trigger="manual", rule="r", action="apply", target="tests.triggers.sample_actions:sleep",
                   params=json.loads(sys.argv[2]), event={}).result()
    """)
    runtime = subprocess.Popen(
        [sys.executable, "-c", driver, json.dumps(config), json.dumps(params)],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        pids = wait_for(
            lambda: pid_file.exists() and pid_file.stat().st_size and json.loads(pid_file.read_text()),
            timeout=60,
            what="the action's pid",
        )
        runtime.send_signal(signal.SIGKILL)
        runtime.wait()
        wait_for(lambda: not any(alive(p) for p in pids), timeout=15, what="the action gone")
    finally:
        if runtime.poll() is None:
            runtime.kill()
    bucket = ctx.config.state_bucket
    assert list_activations(ctx.storage, bucket) == []  # the runtime died before writing it
    done = complete_interrupted(ctx.storage, bucket)
    assert [a.status for a in done] == ["interrupted"] and done[0].action == "apply"
    records = list_activations(ctx.storage, bucket)
    assert [(r.status, r.result["error"]["code"]) for r in records] == [("interrupted", "ACTION_INTERRUPTED")]
    assert list(ctx.storage.list(bucket, layout.ACTIVATIONS_STARTED)) == []
    assert complete_interrupted(ctx.storage, bucket) == []  # completed once
