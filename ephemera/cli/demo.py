"""``ephemera demo``: the whole flow, locally, in a fresh home.

An alarm fires a second after start and applies the ``local`` stack, whose "VMs" are
agent processes; worker 0 runs the digits cross-validation workload through the
Lithops-compatible executor and writes its outputs and then ``_SUCCESS.json``; the
bucket-write rule fires ``destroy``, which stops the agents and records DESTROYED.
The demo prints each state as it happens, then the timeline and the outputs, and
exits 0 only if the run succeeded and nothing is left running. When the user's own
Ephemera home holds a prepared image of the demo's lock (``ephemera image build --demo``),
the demo's VM starts from it (:func:`adopt_image`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import yaml

from ephemera.cli.runs import timeline
from ephemera.cli.tables import human_size, table
from ephemera.context import Context
from ephemera.errors import EphemeraError
from ephemera.model import marker as markers
from ephemera.model.runs import RunRecord, RunState
from ephemera.timeutil import now_utc

S = RunState


def demo_config(home: Path, worker_count: int = 1, fire_in: float = 1.0) -> dict:
    fire = now_utc() + timedelta(seconds=fire_in)
    return {
        "home": str(home),
        "storage": {"backend": "localhost", "bucket": "ephemera-demo"},
        "localhost": {"root": str(home / "storage")},
        "workspace": {"name": "demo", "stack": "local", "variables": {"worker_count": worker_count}},
        "workload": {"entry": "ephemera.workloads.digits_cv:main", "params": {"folds": 5}, "output_prefix": "outputs"},
        "timeouts": {"hard": "15m", "soft": "5m", "action": "5m"},
        "triggers": [
            {"name": "demo-alarm", "kind": "alarm", "once": fire.isoformat(timespec="milliseconds")},
            {"name": "run-finished", "kind": "object_write", "prefix": "outputs/", "suffix": list(markers.NAMES)},
        ],
        "rules": [
            {"trigger": "demo-alarm", "action": "apply"},
            {"trigger": "run-finished", "action": "destroy"},
        ],
    }


class _Watcher:
    """Prints each new state of the demo's run; says when to stop."""

    def __init__(self, ctx: Context, started: float):
        self.ctx, self.started = ctx, started
        self.seen = 0
        self.run: RunRecord | None = None

    def __call__(self) -> bool:
        if self.run is None:  # until the alarm fires, look for the run; then follow it alone
            runs = list(self.ctx.ledger.list())
            if not runs:
                return False
            self.run = runs[0]
        else:
            self.run = self.ctx.ledger.get(self.run.run_id)
        for t in self.run.transitions[self.seen :]:
            print(f"  [{time.time() - self.started:6.2f}s] {t.state:<14} {t.reason}", flush=True)
        self.seen = len(self.run.transitions)
        return self.run.state == S.DESTROYED


def _agents_alive(run) -> int:
    from ephemera.vm.pids import is_agent_process, read_pid

    alive = 0
    for agent in run.outputs.get("agents", []):
        pid = read_pid(agent["pid_file"])
        if pid and is_agent_process(pid):
            alive += 1
    return alive


def _report(ctx: Context, run) -> int:
    print("\nTimeline (time since the alarm fired):")
    print(timeline(run, origin=run.event.get("time") or run.created_at))
    bucket, prefix = run.job.output_bucket, run.job.output_prefix
    objects = list(ctx.storage.list(bucket, prefix))
    print(f"\nOutputs in {bucket}/{prefix}:")
    print(table(["KEY", "SIZE"], [[o.key[len(prefix) :], human_size(o.size)] for o in objects]))
    metrics_key = prefix + "metrics.json"
    if any(o.key == metrics_key for o in objects):
        metrics = json.loads(ctx.storage.get(bucket, metrics_key))
        folds = ", ".join(f"{f['accuracy']:.3f}" for f in metrics["folds"])
        print(f"\n{len(metrics['folds'])}-fold accuracy on {metrics['device']}: {folds}; mean {metrics['mean_accuracy']:.4f}")
    alive = _agents_alive(run)
    print(f"\nRun {run.run_id}: {run.state}; agent processes left running: {alive}")
    if run.error or (run.result or {}).get("status") != "succeeded":
        if run.error:
            print(f"demo failed at stage 'workload': {run.error.code}: {run.error.message}", file=sys.stderr)
            if run.error.log_tail:
                print(run.error.log_tail, file=sys.stderr)
        else:
            print(f"demo failed at stage 'workload': the run's result is {run.result}", file=sys.stderr)
        return 1
    if alive:
        print("demo failed at stage 'destroy': agent processes are still running", file=sys.stderr)
        return 1
    return 0


def _failure_stage(ctx: Context, watcher: _Watcher) -> str:
    if watcher.run is None:
        from ephemera.runtime.activations import list_activations

        acts = list_activations(ctx.storage, ctx.config.state_bucket, 5)
        if not acts:
            return "alarm: no action was invoked"
        last = acts[0]
        return f"{last.action} action: {json.dumps(last.result)[:500]}"
    run = watcher.run
    reason = run.error.message if run.error else ""
    return f"{run.state}: {reason}" if reason else f"stuck in {run.state}"


def user_home() -> Path:
    """The Ephemera home the user has outside the demo (where ``ephemera image build --demo``
    puts the demo's image), read before the demo points EPHEMERA_HOME at its own."""
    return Path(os.environ.get("EPHEMERA_HOME") or "~/.ephemera").expanduser().resolve()


def adopt_image(ctx: Context, raw: dict, mine: Path) -> str | None:
    """The demo's prepared image, when the user's home ``mine`` holds one of the demo's lock:
    its image store is linked into the demo's fresh home and its record put in the demo's new
    state bucket, so the run finds it as any run finds its lock's image (and its VM checks
    the folder's digest). None: the demo's VMs install the stock way."""
    from dataclasses import replace  # only when the demo looks for its image (cold start)

    from ephemera.bundle.image import IMAGES_DIR, ImageRecord, local_lock, lock_sha256, put_record  # likewise

    demo_home = Path(raw["home"])
    sha = lock_sha256(local_lock(list(raw["workload"].get("requirements") or []), None))
    store = mine / IMAGES_DIR
    try:
        record = ImageRecord.from_dict(json.loads((store / "local" / f"{sha}.json").read_text()))
    except (OSError, ValueError, EphemeraError):
        return None
    if mine == demo_home or record.path != str(store / "local" / sha):
        return None
    (demo_home / IMAGES_DIR).symlink_to(store, target_is_directory=True)
    put_record(ctx.storage, ctx.config.state_bucket, replace(record, path=str(demo_home / IMAGES_DIR / "local" / sha)))
    return record.id


def run_demo(home: str | None = None, timeout: float = 180.0, worker_count: int = 1) -> int:
    from ephemera.runtime.runtime import run_up

    # watchdog logs an error when its inotify thread sees events during shutdown: harmless here
    logging.getLogger("watchdog.observers.inotify").setLevel(logging.CRITICAL)
    home_path = Path(home).expanduser().resolve() if home else Path(tempfile.mkdtemp(prefix="ephemera-demo-"))
    home_path.mkdir(parents=True, exist_ok=True)
    mine = user_home()
    os.environ["EPHEMERA_HOME"] = str(home_path)  # children (actions, agents) use the same home
    made = now_utc()  # the runtime counts its first start from here: the alarm is a second after it
    raw = demo_config(home_path, worker_count)
    (home_path / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    ctx = Context(raw)
    print(f"Ephemera demo: home {home_path} (config in config.yaml)")
    image = adopt_image(ctx, raw, mine)
    if image:
        print(f"Its VM starts from the prepared image {image} (in {mine}); `ephemera image delete {image} --demo` removes it.")
    else:
        print("Its VM installs the stock way; `make demo-image` (`ephemera image build --demo`) prepares an image once.")
    print(f"Alarm 'demo-alarm' fires at {raw['triggers'][0]['once']}; marker writes under outputs/ fire 'destroy'.")
    started = time.time()
    watcher = _Watcher(ctx, started)
    stop = threading.Event()
    timer = threading.Timer(timeout, stop.set)
    timer.daemon = True
    timer.start()
    try:
        # the alarm is a second away when the config is written: on a busy machine the runtime
        # may start after it, and from `made` on it is a missed time that "latest" fires
        run_up(ctx.config, stop=stop, until=watcher, catch_up="latest", since=made)
    finally:
        timer.cancel()
    watcher()
    if watcher.run is None or watcher.run.state != S.DESTROYED:
        print(f"demo failed after {time.time() - started:.1f}s at stage {_failure_stage(ctx, watcher)}", file=sys.stderr)
        return 1
    code = _report(ctx, watcher.run)
    command = f"{command_name()} --config {home_path / 'config.yaml'}"
    print(
        f"\nDemo finished in {time.time() - started:.1f}s. Inspect it with: {command} runs show {watcher.run.run_id}"
        f"\n  its logs (the VM is gone, they are not): {command} logs {watcher.run.run_id}"
        f"\n  or in a browser: {command} dashboard"
    )
    return code


def command_name() -> str:
    """How the user can type this ``ephemera``: the bare name when it is the one on PATH,
    else its path (``make demo`` runs the virtualenv's, which is not on PATH until it is
    activated), relative to the working directory when under it."""
    import shutil  # only when the demo looks for its command on PATH

    mine = Path(sys.prefix) / "bin" / "ephemera"
    if not mine.exists():
        return "ephemera"
    found = shutil.which("ephemera")
    if found and Path(found).resolve() == mine.resolve():
        return "ephemera"
    try:
        return "./" + mine.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(mine)
