"""Run logs: what VMs ship (files, log records, the workload's output), scrubbed and
timestamped, the engine's job logs, and `ephemera logs` reading them back, with
--follow, --worker, --source and --since."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest

from ephemera.cli.logs import RunLogs, action_lines, show_logs
from ephemera.context import Context
from ephemera.storage.localhost.config import storage_root
from ephemera.model.logs import read_logs, write_engine_log
from ephemera.model.runs import RunRecord, RunState
from ephemera.secrets import MASK, Scrubber
from ephemera.runtime.activations import Activation, store_activation
from ephemera.vm.logship import LogShipper

SECRET = "hmac-secret-0123456789"
RUN = "ws-20261202t100000"


@pytest.fixture
def ctx(local_config):
    raw = local_config(localhost={"root": str(Path(local_config()["home"]) / "storage")})
    context = Context(raw)
    context.storage.create_bucket(context.config.state_bucket)
    return context


def shipper(ctx, worker=0, **kw):
    return LogShipper(ctx.storage, ctx.config.state_bucket, RUN, worker, Scrubber([SECRET]), **kw)


def stored_bytes(ctx) -> bytes:
    root = storage_root(ctx.config)
    return b"".join(p.read_bytes() for p in root.rglob("*.log"))


def test_a_vm_ships_its_boot_file_agent_records_and_workload_output_scrubbed_and_stamped(ctx, tmp_path):
    boot = tmp_path / "bootstrap.log"
    boot.write_text(
        f"2026-12-02T10:00:01.000+00:00 bootstrap: fetching the bundle with {SECRET}\n"
        "Collecting scikit-learn (a pip line without a time of its own)\n"
    )
    ship = shipper(ctx)
    ship.tail_file("boot", boot)
    logger = logging.getLogger("test.agent.ship")
    logger.setLevel(logging.INFO)
    logger.addHandler(ship.handler("agent"))
    try:
        logger.info("agent up, key %s", SECRET)
    finally:
        logger.handlers.clear()
    ship.add("workload", "2026-12-02T10:00:05.500+00:00 INFO ephemera.workload: fold 1 done\n")
    assert ship.flush() == 3
    with boot.open("a") as fh:  # the file grows: only the new line is shipped next time
        fh.write("2026-12-02T10:00:09.000+00:00 bootstrap: bundle installed\n")
    assert ship.flush() == 1

    lines, keys = read_logs(ctx.storage, ctx.config.state_bucket, RUN)
    assert len(keys) == 4
    by_source = {}
    for line in lines:
        by_source.setdefault(line.source, []).append(line)
    boot_lines = by_source["boot"]
    assert [line.at for line in boot_lines] == ["2026-12-02T10:00:01.000+00:00"] * 2 + ["2026-12-02T10:00:09.000+00:00"]
    assert boot_lines[0].text == f"bootstrap: fetching the bundle with {MASK}"
    assert boot_lines[1].text.startswith("Collecting scikit-learn")  # stamped with the line before it
    assert by_source["agent"][0].text == f"INFO test.agent.ship: agent up, key {MASK}" and by_source["agent"][0].worker == 0
    assert by_source["workload"][0].at == "2026-12-02T10:00:05.500+00:00"
    assert by_source["workload"][0].text == "INFO ephemera.workload: fold 1 done"
    assert SECRET.encode() not in stored_bytes(ctx)


def test_a_failed_upload_keeps_its_lines_for_the_next_one(ctx):
    ship = shipper(ctx)
    real_put, calls = ctx.storage.put, []

    def flaky_put(bucket, key, data):
        calls.append(key)
        if len(calls) == 1:
            raise OSError("connection reset")
        return real_put(bucket, key, data)

    ship.storage = type("Flaky", (), {"put": staticmethod(flaky_put)})()
    ship.add("agent", "first line")
    assert ship.flush() == 0
    ship.add("agent", "second line")
    assert ship.flush() == 1
    lines, _ = read_logs(ctx.storage, ctx.config.state_bucket, RUN)
    assert [line.text for line in lines] == ["first line", "second line"]


def test_stop_uploads_what_is_left(ctx):
    ship = shipper(ctx, interval=60).start()
    ship.add("workload", "the last line before the VM goes")
    ship.stop()
    lines, _ = read_logs(ctx.storage, ctx.config.state_bucket, RUN)
    assert [line.text for line in lines] == ["the last line before the VM goes"]


def test_engine_logs_are_scrubbed_and_stamped_from_the_job_start(ctx):
    write_engine_log(
        ctx.storage,
        ctx.config.state_bucket,
        RUN,
        "tf-1",
        "2026-12-02T10:00:00.000+00:00",
        f"apply tf-1: FAILED\nError: token {SECRET} refused",
        Scrubber([SECRET]),
    )
    lines, _ = read_logs(ctx.storage, ctx.config.state_bucket, RUN)
    assert [(line.source, line.at, line.text) for line in lines] == [
        ("engine", "2026-12-02T10:00:00.000+00:00", "apply tf-1: FAILED"),
        ("engine", "2026-12-02T10:00:00.000+00:00", f"Error: token {MASK} refused"),
    ]
    assert SECRET.encode() not in stored_bytes(ctx)


def _record(ctx, state_path):
    ctx.ledger.create(RunRecord(run_id=RUN, workspace="ws", engine="terraform"))
    for state in state_path:
        ctx.ledger.transition(RUN, state, "test")


def _args(**kw):
    base = {"run_id": RUN, "follow": False, "worker": None, "source": None, "since": None, "all": False}
    return argparse.Namespace(**{**base, **kw})


def test_follow_prints_lines_as_they_come_and_stops_when_destroyed(ctx):
    S = RunState
    _record(ctx, [S.APPLYING, S.RUNNING])
    first = shipper(ctx)
    first.add("workload", "2026-12-02T10:00:01.000+00:00 step 1")
    first.flush()
    out, sleeps = [], []

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 1:  # while following: more lines, then the run ends and is destroyed
            first.add("workload", "2026-12-02T10:00:02.000+00:00 step 2")
            first.flush()
            for state in (S.SUCCEEDED, S.DESTROYING):
                ctx.ledger.transition(RUN, state, "test")
        elif len(sleeps) == 2:
            first.add("agent", "2026-12-02T10:00:03.000+00:00 agent stopped")  # shipped at exit, before DESTROYED
            first.flush()
            ctx.ledger.transition(RUN, S.DESTROYED, "test")
        if len(sleeps) > 5:
            raise AssertionError("--follow did not stop at DESTROYED")

    assert show_logs(ctx, _args(follow=True), out.append, sleep) == 0
    assert len(sleeps) == 2
    assert [line.split("  ", 1)[1].split(None, 2)[-1] for line in out[:-1]] == ["step 1", "step 2", "agent stopped"]
    assert "--all" in out[-1]  # the default leaves out the action, engine and boot lines, and says so
    assert out[0].startswith("2026-12-02 10:00:01.000  vm0 workload")


def test_worker_source_and_since_filters(ctx):
    _record(ctx, [])
    for worker in (0, 1):
        ship = shipper(ctx, worker)
        ship.add("agent", f"2026-12-02T10:00:0{worker}.000+00:00 agent {worker}")
        ship.add("workload", f"2026-12-02T10:00:0{worker + 5}.000+00:00 work {worker}")
        ship.flush()
    write_engine_log(ctx.storage, ctx.config.state_bucket, RUN, "tf-1", "2026-12-02T09:59:59.000+00:00", "apply", Scrubber())

    def texts(**kw):
        logs = RunLogs(ctx, RUN, **kw)
        return [line.text for line in logs.new_lines()]

    assert texts() == ["apply", "agent 0", "agent 1", "work 0", "work 1"]
    assert texts(worker=1) == ["apply", "agent 1", "work 1"]  # engine lines belong to every worker
    assert texts(sources=["workload"]) == ["work 0", "work 1"]
    from datetime import datetime

    assert texts(since=datetime.fromisoformat("2026-12-02T10:00:04+00:00")) == ["work 0", "work 1"]


def test_action_lines_come_from_the_activations_that_name_the_run(ctx):
    _record(ctx, [])
    for run_id, aid in ((RUN, "a" * 32), ("other-run", "b" * 32)):
        store_activation(
            ctx.storage,
            ctx.config.state_bucket,
            Activation(
                activationId=aid,
                trigger="nightly",
                rule="nightly-apply",
                action="apply",
                target="ephemera.actions.apply:main",
                start="2026-12-02T10:00:00.000+00:00",
                end="2026-12-02T10:00:02.000+00:00",
                duration_ms=2000,
                status="success",
                result={"ok": True, "run_id": run_id, "state": "RUNNING"},
                logs=[f"2026-12-02T10:00:01.000+00:00 stderr: applying with {SECRET}"],
            ),
            [SECRET],
        )
    logs = RunLogs(ctx, RUN, sources=["action"])
    lines = logs.new_lines()
    assert [line.text for line in lines] == [
        f"apply started (activation {'a' * 32}, trigger nightly)",
        f"apply: stderr: applying with {MASK}",
        "apply ended success in 2.00s: run_id=" + RUN + " state=RUNNING",
    ]
    assert logs.new_lines() == []  # seen once
    assert action_lines([], RUN) == []


HOSTILE = "\x1b]0;owned\x07\x1b[2J\x1b[1;31mred\x1b[0m\rclean\x9b31m\u202eevil\u2066\x7f\x00"


def test_control_sequences_in_log_lines_are_shown_not_obeyed(ctx):
    """Finding 11: ``ephemera logs`` printed what a workload logged verbatim, so an ESC
    sequence could retitle the terminal window (OSC 0), clear the screen (CSI 2J), a
    carriage return overwrite the start of the line, a C1 CSI (0x9b) or a right-to-left
    override reorder it. Each is now printed as an escape (``\\x1b``), and nothing a
    workload logs can start a line of its own: lines after the first of a multi-line
    entry are indented under its text."""
    _record(ctx, [RunState.APPLYING, RunState.RUNNING])
    ship = shipper(ctx)
    ship.add("workload", "2026-12-02T10:00:01.000+00:00 " + HOSTILE)
    # a CR or NEL inside a line is its text, not the end of an entry that could carry its own time
    ship.add("workload", "2026-12-02T10:00:01.100+00:00 two\r2020-01-01T00:00:00.000+00:00\tback\x85dated")
    ship.flush()
    store_activation(
        ctx.storage,
        ctx.config.state_bucket,
        Activation(
            activationId="c" * 32,
            trigger="night\x1b[8mly",
            rule="r",
            action="apply",
            target="ephemera.actions.apply:main",
            start="2026-12-02T10:00:00.000+00:00",
            end="2026-12-02T10:00:02.000+00:00",
            duration_ms=2000,
            status="success",
            result={"ok": True, "run_id": RUN, "state": "RUNNING\x1b[2J"},
            logs=["2026-12-02T10:00:01.500+00:00 one\n2026-12-02 10:00:09.000  vm0 agent      forged entry"],
        ),
        [],
    )
    out: list[str] = []
    assert show_logs(ctx, _args(all=True), out.append) == 0
    printed = "\n".join(out)
    for raw in ("\x1b", "\x07", "\r", "\x9b", "\u202e", "\u2066", "\x7f", "\x00"):
        assert raw not in printed, repr(raw)
    assert "\\x1b]0;owned\\x07\\x1b[2J\\x1b[1;31mred\\x1b[0m\\x0dclean\\x9b31m\\u202eevil\\u2066\\x7f\\x00" in printed
    assert "two\\x0d2020-01-01T00:00:00.000+00:00\tback\\x85dated" in printed and "2020-01-01 00:00" not in printed
    assert "trigger night\\x1b[8mly" in printed and "state=RUNNING\\x1b[2J" in printed
    lines = printed.split("\n")
    forged = [line for line in lines if "forged entry" in line]
    assert len(forged) == 1 and forged[0].startswith(" ") and forged[0].strip().startswith("2026-12-02 10:00:09.000")
    assert all(line[:1].isdigit() or line.startswith(" ") for line in lines)  # every entry at the margin, and only entries


def test_activations_print_control_characters_as_escapes():
    """Finding 11, ``ephemera activations``: the table and one activation in full show a
    trigger's or a log line's control characters as escapes, one log line per line."""
    from ephemera.cli.activations import format_activation, format_table

    activation = Activation(
        activationId="d" * 32,
        trigger="t\x1b[2J",
        rule="r\u202e",
        action="apply",
        target="ephemera.actions.apply:main",
        start="2026-12-02T10:00:00.000+00:00",
        end="2026-12-02T10:00:02.000+00:00",
        duration_ms=2000,
        status="success",
        result={"error": {"code": "X", "message": "m\x1b]0;owned\x07"}},
        logs=["a\x1b[31m\nfake line", "b\rc"],
    )
    for printed in (format_table([activation]), format_activation(activation)):
        assert "\x1b" not in printed and "\u202e" not in printed and "\r" not in printed and "\x07" not in printed
    full = format_activation(activation)
    assert "trigger     t\\x1b[2J" in full and "  a\\x1b[31m\\x0afake line" in full and "  b\\x0dc" in full
    assert "\\x1b]0;owned\\x07" in format_table([activation])
