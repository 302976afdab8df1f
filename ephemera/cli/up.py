"""``ephemera up`` and ``ephemera activations``: the commands over the local runtime.

:mod:`ephemera.cli` adds the arguments with :func:`add_up_arguments` /
:func:`add_activations_arguments` and calls :func:`cmd_up` / :func:`cmd_activations`
with the loaded config; each returns an exit code and prints to stdout. Arguments
missing from ``args`` take their defaults.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ephemera.cli.activations import format_activation, format_table, result_summary
from ephemera.config import Config
from ephemera.errors import NoSuchKeyError
from ephemera.runtime.activations import get_activation, list_activations
from ephemera.runtime.scheduler import CATCH_UP_POLICIES


def add_up_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--catch-up",
        dest="catch_up",
        choices=CATCH_UP_POLICIES,
        default="skip",
        help="alarms missed while not running: skip them (default), fire the latest, or fire all",
    )
    parser.add_argument(
        "--reap-interval",
        dest="reap_interval",
        type=float,
        default=60.0,
        help="seconds between built-in reaper runs; 0 turns it off (default 60)",
    )
    parser.add_argument(
        "--poll-interval",
        dest="poll_interval",
        type=float,
        default=2.0,
        help="seconds between bucket listings for non-localhost storage (default 2)",
    )
    parser.add_argument(
        "--watch",
        choices=("auto", "events", "poll"),
        default="auto",
        help="how bucket writes are seen: filesystem events on localhost storage (auto) or polling",
    )
    parser.add_argument(
        "--max-concurrent",
        dest="max_concurrent",
        type=int,
        default=16,
        help="invocations running at once per lane (destroy, apply; default 16)",
    )


def add_activations_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("activation_id", nargs="?", help="show one activation (an id or a unique prefix) with its logs")
    parser.add_argument("--limit", type=int, default=20, help="how many of the newest activations to list (default 20)")
    parser.add_argument("--logs", action="store_true", help="print each listed activation in full, with its logs")


def _activation_line(activation) -> None:
    print(
        f"{activation.activationId}  {activation.trigger} -> {activation.action}  {activation.status}"
        f"  {activation.duration_ms / 1000:.2f}s  {result_summary(activation, 80)}",
        flush=True,
    )


def cmd_up(config: Config, args: argparse.Namespace) -> int:
    """Run the triggers and rules of ``config`` until Ctrl-C / SIGTERM."""
    from ephemera.runtime.runtime import run_up

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    if not config.rules:
        print("no rules in the config: nothing to run (add 'triggers' and 'rules' sections)", file=sys.stderr)
    run_up(
        config,
        reap_interval=getattr(args, "reap_interval", 60.0) or None,
        catch_up=getattr(args, "catch_up", "skip"),
        poll_interval=getattr(args, "poll_interval", 2.0),
        watch=getattr(args, "watch", "auto"),
        max_concurrent=getattr(args, "max_concurrent", 16),
        on_activation=_activation_line,
        handle_signals=True,
    )
    for line in open_runs_lines(config):
        print(line, file=sys.stderr)
    return 0


def open_runs_lines(config: Config) -> list[str]:
    """What ``up`` leaves behind at exit: every run not yet DESTROYED, and the command that ends it."""
    from ephemera.context import Context  # lazily: the CLI imports a command's modules when it runs (cold start)

    try:
        runs = [r for r in Context(config).ledger.list() if str(r.state) != "DESTROYED"]
    except Exception as exc:  # noqa: BLE001 - a listing that fails must not hide the exit
        return [f"ephemera up: could not list the open runs ({type(exc).__name__}); `ephemera runs --open` shows them"]
    if not runs:
        return ["ephemera up: no open runs left"]
    where = f" --config {config.source}" if config.source and not config.source.startswith("<") else ""
    lines = [
        f"ephemera up: {len(runs)} open run(s) left; their VMs keep running (and costing) until ended. "
        "Start `ephemera up` again to end them when their marker lands (or by the reaper at their deadline), "
        "or end one now:"
    ]
    lines += [f"  {r.run_id}  {r.state}  ephemera invoke destroy run_id={r.run_id}{where}" for r in runs]
    return lines


def cmd_activations(config: Config, args: argparse.Namespace) -> int:
    """List the newest activations as a table (``--logs``: each in full after it), or
    show one activation by id."""
    from ephemera.storage import get_storage

    storage = get_storage(config)
    activation_id = getattr(args, "activation_id", None)
    if activation_id:
        try:
            print(format_activation(get_activation(storage, config.state_bucket, activation_id)))
        except NoSuchKeyError:
            print(
                f"no activation '{activation_id}' (or the prefix matches several); `ephemera activations` lists them",
                file=sys.stderr,
            )
            return 1
        return 0
    activations = list_activations(storage, config.state_bucket, getattr(args, "limit", 20))
    print(format_table(activations))
    if getattr(args, "logs", False):
        for activation in activations:
            print()
            print(format_activation(activation))
    return 0


def destroy_path_hint(config: Config, run_id: str) -> str:
    """What ends a run applied by hand: a marker rule works only while ``ephemera up`` runs."""
    from ephemera.model.marker import NAMES  # lazily: the CLI imports a command's modules when it runs (cold start)

    where = f" --config {config.source}" if config.source and not config.source.startswith("<") else ""
    by_hand = f"`ephemera invoke destroy run_id={run_id}{where}`"
    marker_triggers = {
        t.name
        for t in config.triggers
        if t.kind == "object_write" and (not t.suffix or any(n.endswith(tuple(t.suffix)) for n in NAMES))
    }
    if any(r.action == "destroy" and r.trigger in marker_triggers for r in config.rules):
        return (
            f"run {run_id}: its completion marker destroys it while `ephemera up{where}` runs (start it if it "
            f"is not running), or end it by hand: {by_hand}"
        )
    return (
        f"run {run_id}: nothing in this config destroys it when its workload ends (no rule binds 'destroy' to an "
        f"object_write trigger on its marker), so its VMs stay up until the reaper's hard deadline. Add such a "
        f"rule and run `ephemera up`, or end it by hand once done: {by_hand}"
    )
