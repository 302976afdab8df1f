"""Small actions the runtime tests invoke in child processes (never the real ones).

Each is ``main``-shaped: ``f(params) -> dict``. ``record`` appends one JSON line per
invocation to ``params["record_file"]`` so a test can see what ran and with what.
"""

from __future__ import annotations

import json
import os
import sys
import time


def _record(params: dict, **extra) -> None:
    line = {k: v for k, v in params.items() if k != "config"}
    line.update(extra, pid=os.getpid(), activation=os.environ.get("__OW_ACTIVATION_ID"))
    with open(params["record_file"], "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")


def echo(params: dict) -> dict:
    print("echo: hello on stdout")
    print("echo: hello on stderr", file=sys.stderr)
    return {
        "ok": True,
        "event": {k: v for k, v in params.items() if k != "config"},
        "state_bucket": params["config"]["storage"]["bucket"],
    }


def record(params: dict) -> dict:
    _record(params)
    print(f"recorded {params.get('ephemera_kind')} from {params.get('ephemera_trigger')}")
    return {"ok": True, "key": params.get("key")}


def write_marker(params: dict) -> dict:
    """Like apply + a fast workload: writes a completion marker to the output bucket."""
    from ephemera.assembly import load_config
    from ephemera.assembly import get_storage

    _record(params)
    config = load_config(params["config"])
    run_id = "run-" + params["ephemera_time"][:19].replace(":", "").replace("-", "")
    key = f"outputs/{run_id}/_SUCCESS.json"
    storage = get_storage(config)
    storage.put(config.output_bucket, f"outputs/{run_id}/metrics.json", b'{"accuracy": 0.9}')
    storage.put(config.output_bucket, key, json.dumps({"run_id": run_id}).encode())
    print(f"wrote {key}")
    return {"ok": True, "run_id": run_id, "state": "RUNNING"}


def sleep(params: dict) -> dict:
    """Sleeps ``seconds``; writes its pid (and a grandchild's) first when asked."""
    if params.get("spawn_grandchild"):
        import subprocess

        child = subprocess.Popen(["sleep", "120"])
        params.setdefault("pids", []).append(child.pid)
    if params.get("pid_file"):
        with open(params["pid_file"], "w") as fh:
            json.dump([os.getpid(), *params.get("pids", [])], fh)
    if params.get("started_file"):
        open(params["started_file"], "w").close()
    print("sleeping", flush=True)
    time.sleep(float(params.get("seconds", 60)))
    return {"ok": True, "slept": params.get("seconds", 60)}


def meet(params: dict) -> dict:
    """Creates ``mine`` then waits (up to 20 s) for ``other``: both see each other only
    if they run at the same time."""
    open(params["mine"], "w").close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if os.path.exists(params["other"]):
            return {"ok": True, "met": True}
        time.sleep(0.02)
    return {"ok": True, "met": False}


def crash(params: dict) -> dict:
    print("about to crash", flush=True)
    os._exit(3)


def boom(params: dict) -> dict:
    raise ValueError("boom")


def not_a_dict(params: dict):
    return ["a", "list"]


def not_json(params: dict) -> dict:
    return {"when": object()}


def app_error(params: dict) -> dict:
    return {"error": {"code": "RUN_NOT_FOUND", "message": "no run 'x'"}}


def leak_secret(params: dict) -> dict:
    """A careless action: prints and returns the secrets it was given."""
    s3 = params["config"]["aws_s3"]
    print(f"using key {s3['access_key_id']} / {s3['secret_access_key']}")
    print(f"secret on stderr {s3['secret_access_key']}", file=sys.stderr)
    return {"ok": True, "echo": s3["secret_access_key"], "nested": {s3["secret_access_key"]: [s3["access_key_id"]]}}


def channels(params: dict) -> dict:
    """Reports where the config's secret is visible to the process, and which heavy
    modules were imported before this action."""
    secret = params["config"]["aws_s3"]["secret_access_key"]
    with open(f"/proc/{os.getpid()}/cmdline", "rb") as fh:
        cmdline = fh.read().decode(errors="replace")
    heavy = sorted(
        m
        for m in sys.modules
        if m.split(".")[0] in {"ephemera", "yaml", "watchdog", "croniter", "concurrent", "triggers"}
        and m not in ("ephemera", "ephemera.runtime", "ephemera.runtime.invoker", "ephemera.lifeline")
    )
    return {
        "received": bool(secret),
        "in_argv": secret in cmdline,
        "in_env": any(secret in v for v in os.environ.values()),
        "heavy_modules": heavy,
    }


IMPORTED_AT = time.time()  # when this module was imported in the process running the action


def whoami(params: dict) -> dict:
    """Which process ran the invocation, where, with which activation id; optionally chdir away."""
    seen = {
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "activation": os.environ.get("__OW_ACTIVATION_ID"),
        "imported_age": time.time() - IMPORTED_AT,
    }
    if params.get("chdir"):
        os.chdir(params["chdir"])
    return {"ok": True, **seen}


def tagged(params: dict) -> dict:
    """Prints its tag on stdout and stderr a few times, slowly; with ``leave`` it returns
    at once, leaving a thread that prints after ``leave`` seconds."""
    if params.get("leave"):
        import threading

        def late():
            time.sleep(float(params["leave"]))
            print("late line from a leftover thread", flush=True)

        threading.Thread(target=late, daemon=True).start()
        return {"ok": True, "pid": os.getpid()}
    for i in range(int(params.get("lines", 5))):
        print(f"tag {params['tag']} line {i}", flush=True)
        print(f"tag {params['tag']} err {i}", file=sys.stderr, flush=True)
        time.sleep(float(params.get("pause", 0.02)))
    return {"ok": True, "pid": os.getpid()}
