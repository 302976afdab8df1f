"""``FunctionExecutor.plot()``: the execution's timeline and its histogram of busy
calls, as PNG files, where Lithops writes them.

Lithops' contract (``lithops/executors.py``, ``lithops/plots.py``): ``plot(fs=None,
dst=None, figsize=(10, 6))`` plots the futures given (default: all of the executor's)
that are done without error; nothing when none is; ``dst`` is a path *prefix*, the files
being ``<realpath(dst)>_timeline.png`` and ``<realpath(dst)>_histogram.png``; without
it ``./plots/<epoch seconds>_timeline.png`` and ``..._histogram.png``. It needs
matplotlib (Lithops: ``pip install lithops[plotting]``; here the ``plotting`` extra),
imported only when a plot is made, and raises ModuleNotFoundError naming the extra
when it is missing.

Times are the futures' ``stats``, seconds since the first call was submitted:
submitted (``host_submit_tstamp``), function start and end on the worker
(``worker_func_start_tstamp``/``worker_func_end_tstamp``), status and result read by
the host. The histogram counts, per time step, the calls running on a worker
(``worker_start_tstamp`` to ``worker_end_tstamp``).
"""

from __future__ import annotations

import os
import time
from typing import Any, Sequence

POINTS = (
    ("host submit", "host_submit_tstamp"),
    ("function start", "worker_func_start_tstamp"),
    ("function done", "worker_func_end_tstamp"),
    ("status fetched", "host_status_done_tstamp"),
    ("results fetched", "host_result_done_tstamp"),
)


def plot_paths(dst: str | None, now: float | None = None) -> tuple[str, str]:
    """Where the timeline and histogram go, as Lithops names them."""
    if dst is None:
        os.makedirs("plots", exist_ok=True)
        base = os.path.join(os.getcwd(), "plots", str(int(now if now is not None else time.time())))
    else:
        base = os.path.realpath(os.path.expanduser(dst))
    return f"{base}_timeline.png", f"{base}_histogram.png"


def _pyplot():
    try:
        import matplotlib  # an optional extra (ephemera[plotting]): imported only when plot() runs

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt  # after use(): the backend must be chosen first
    except ImportError:
        raise ModuleNotFoundError(
            "plot() needs matplotlib: pip install 'ephemera[plotting]' (Lithops: 'lithops[plotting]')"
        ) from None
    return plt


def create_plots(stats: Sequence[dict[str, Any]], dst: str | None, figsize: tuple = (10, 6)) -> tuple[str, str]:
    """Draw the timeline and histogram of ``stats`` (one dict per call); their paths."""
    plt = _pyplot()
    timeline_path, histogram_path = plot_paths(dst)
    origin = min(s.get("host_job_create_tstamp", s["host_submit_tstamp"]) for s in stats)

    fig, ax = plt.subplots(figsize=figsize)
    for name, field in POINTS:
        points = [(s[field] - origin, i) for i, s in enumerate(stats) if field in s]
        if points:
            ax.scatter([p[0] for p in points], [p[1] for p in points], s=10, label=name, alpha=0.8)
    ax.set_xlabel("Execution Time (sec)")
    ax.set_ylabel("Function Call")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(timeline_path)
    plt.close(fig)

    spans = [
        (s["worker_start_tstamp"] - origin, s["worker_end_tstamp"] - origin)
        for s in stats
        if "worker_start_tstamp" in s and "worker_end_tstamp" in s
    ]
    end = max([b for _, b in spans] + [1.0])
    steps = 200
    grid = [end * k / steps for k in range(steps + 1)]
    busy = [sum(1 for a, b in spans if a <= t <= b) for t in grid]
    fig, ax = plt.subplots(figsize=figsize)
    for i, (a, b) in enumerate(spans):
        ax.plot([a, b], [i, i], color="black", alpha=0.6, linewidth=0.4)
    ax.plot(grid, busy, label="Total Active Calls")
    ax.set_xlabel("Execution Time (sec)")
    ax.set_ylabel("Function Call")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(histogram_path)
    plt.close(fig)
    return timeline_path, histogram_path
