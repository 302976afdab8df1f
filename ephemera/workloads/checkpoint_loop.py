"""A sample workload for spot capacity: a loop that checkpoints after every step and
resumes from the last checkpoint when a recovered VM of the same run starts it again.

Parameters: ``steps`` (how many, default 10), ``step_seconds`` (the work of one step,
default 0.5). Each step adds its number to a running total; the result names the step
it resumed from, so a preempted and recovered run ends with the same ``total`` as an
unpreempted one. On a preemption notice it saves its progress at once and writes the
notice it got as the checkpoint ``notice``.
"""

from __future__ import annotations

import threading
import time


def main(ctx) -> dict:
    steps = int(ctx.params.get("steps", 10))
    pause = float(ctx.params.get("step_seconds", 0.5))
    state = ctx.restore("progress") or {"step": 0, "total": 0}
    resumed_from = state["step"]
    saving = threading.Lock()  # the callback runs in its own thread: one save at a time, newest last

    def on_preempt(notice: dict) -> None:
        with saving:
            ctx.checkpoint("progress", state)  # the latest step, saved before the VM goes away
        ctx.checkpoint("notice", notice)

    ctx.on_preempt(on_preempt)
    while state["step"] < steps:
        time.sleep(pause)  # one step of real work
        with saving:
            state = {"step": state["step"] + 1, "total": state["total"] + state["step"] + 1}
            ctx.checkpoint("progress", state)
    return {"resumed_from": resumed_from, "steps": state["step"], "total": state["total"], "preempted": ctx.preempted}
