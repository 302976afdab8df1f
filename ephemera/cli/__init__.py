"""The ``ephemera`` command.

ephemera demo                     the whole flow locally, in a fresh home
ephemera up                       run the config's triggers and rules until stopped
ephemera runs [show RUN_ID]       the runs ledger, or one run's timeline
ephemera logs RUN_ID [--follow]   a run's workload and agent lines (--all: action, engine, boot too)
ephemera outputs RUN_ID [--get D] a run's output objects (name, size, link), or fetch them into D
ephemera plan [--prices]          what an apply would create, and its estimated cost (or the price table)
ephemera dashboard                a read-only web page of the runs (127.0.0.1:8765)
ephemera activations              what the local runtime invoked, newest first
ephemera invoke ACTION [k=v ...]  invoke an action by hand (apply, destroy, reap, status);
                                  with --url, a deployed Code Engine function (token from
                                  --token-file or EPHEMERA_INVOKE_TOKEN)
ephemera config [--schema]        validate the config and print it (secrets masked), or its JSON Schema
ephemera deploy ...               deploy to Code Engine or OpenWhisk
ephemera bundle pack|publish      the run bundle the VMs install, made or published by hand
ephemera image build|list|delete  prepared images that runs of the same lock start from
ephemera lithops-config RUN_ID    a Lithops config for a run's VMs
"""

from __future__ import annotations

import argparse
import json
import sys

import yaml

from ephemera.errors import EphemeraError, ParamError


def _context(args):
    from ephemera.context import Context

    return Context(args.config)


def cmd_runs(args) -> int:
    from ephemera.cli.runs import run_details, runs_table

    ctx = _context(args)
    if args.action == "show":
        if not args.run_id:
            print("usage: ephemera runs show RUN_ID", file=sys.stderr)
            return 2
        if args.svg:
            from ephemera.cli.dashboard.views import run_svg

            print(run_svg(ctx, args.run_id))  # the dashboard's picture
        else:
            print(run_details(ctx, ctx.ledger.get(args.run_id)))
    else:
        from ephemera.cli.logs import since_time

        print(runs_table(ctx, include_destroyed=not args.open, since=since_time(args.since)))
    return 0


def cmd_up(args) -> int:
    from ephemera.cli.up import cmd_up as up

    return up(_context(args).config, args) or 0


def cmd_activations(args) -> int:
    from ephemera.cli.up import cmd_activations as activations

    return activations(_context(args).config, args) or 0


def _parse_param(text: str):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise EphemeraError(f"parameter '{text}' is not key=value")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def cmd_invoke(args) -> int:
    import importlib

    from ephemera.config import ACTIONS

    if args.name not in ACTIONS:
        print(f"unknown action '{args.name}'; use one of {', '.join(ACTIONS)}", file=sys.stderr)
        return 2
    params = dict(_parse_param(p) for p in args.params)
    if args.url:
        from ephemera.cli.remote_invoke import invoke_token, remote_invoke

        return remote_invoke(args.name, args.url, params, invoke_token(args.token_file), sys.stdout)
    if args.token_file:
        print("--token-file goes with --url (a deployed function); a local invoke needs no token", file=sys.stderr)
        return 2
    ctx = _context(args)
    params["config"] = ctx.config.to_dict(redact=False)
    result = importlib.import_module(f"ephemera.actions.{args.name}").main(params)
    print(json.dumps(result, indent=2, default=str))
    if args.name == "apply" and result.get("state") in ("RUNNING", "APPLYING") and result.get("run_id"):
        from ephemera.cli.up import destroy_path_hint  # lazily: the CLI imports a command's modules when it runs (cold start)

        print(destroy_path_hint(ctx.config, result["run_id"]), file=sys.stderr)  # a run left up is never left unsaid
    return 1 if "error" in result else 0


def cmd_config(args) -> int:
    if args.schema:  # needs no config: it describes every valid one
        from ephemera.assembly import json_schema

        print(json.dumps(json_schema(), indent=2))
        return 0
    config = _context(args).config
    from ephemera.bundle.preflight import check_workload  # lazily: the CLI imports a command's modules when it runs (cold start)

    check_workload(config)  # what an apply would refuse, said now
    print(f"# source: {config.source}")
    print(yaml.safe_dump(config.to_dict(redact=True), sort_keys=False), end="")
    return 0


def cmd_demo(args) -> int:
    from ephemera.cli.demo import run_demo

    return run_demo(home=args.home, timeout=args.timeout, worker_count=args.workers)


def cmd_deploy(args) -> int:  # reached only through build_parser() directly; main() hands deploy over first
    from ephemera.cli.deploy import main as deploy_main  # lazily: the CLI imports a command's modules when it runs (cold start)

    return deploy_main(args.rest, top_config=args.config)


def cmd_bundle(args) -> int:
    from ephemera.cli.bundle import cmd_pack, cmd_publish

    config = _context(args).config
    if args.action == "pack":
        return cmd_pack(config, args.out, sys.stdout)
    return cmd_publish(config, args.archive, sys.stdout, args.expect)


def cmd_image(args) -> int:
    from ephemera.cli.image import cmd_image as image  # lazily: the CLI imports a command's modules when it runs (cold start)
    from ephemera.cli.image import demo_context  # ditto

    if args.demo and args.config:
        raise ParamError("--demo", "works on the demo's image, whose config the demo writes", "drop --config (or --demo)")
    return image(demo_context() if args.demo else _context(args), args, sys.stdout)


def cmd_lithops_config(args) -> int:
    from ephemera.cli.lithops_config import main as lithops_config_main

    return lithops_config_main(_context(args).config, args.run_id, args.output)


def build_parser() -> argparse.ArgumentParser:
    from ephemera.cli.up import add_activations_arguments, add_up_arguments

    parser = argparse.ArgumentParser(prog="ephemera", description="GPU environments that exist only while their work runs.")
    from ephemera.cli.configflag import (
        HELP,
        add_config_flag,
    )  # lazily: the CLI imports a command's modules when it runs (cold start)

    parser.add_argument("--config", "-c", metavar="FILE", help=HELP)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="run the whole flow locally in a fresh home")
    p.add_argument("--home", help="home folder to use (default: a new temporary folder)")
    p.add_argument("--timeout", type=float, default=180.0, help="give up after this many seconds")
    p.add_argument("--workers", type=int, default=1, help="local VMs in the demo run")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("up", help="run the config's triggers and rules until stopped")
    add_up_arguments(p)
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("runs", help="list runs, or show one run's timeline")
    p.add_argument("action", nargs="?", choices=("list", "show"), default="list")
    p.add_argument("run_id", nargs="?")
    p.add_argument("--open", action="store_true", help="only runs not yet DESTROYED")
    p.add_argument("--svg", action="store_true", help="show: print the run's timeline as an SVG picture")
    p.add_argument(
        "--since", help="only runs created since: a duration back from now (7d, 12h) or an ISO time; adds totals by workspace"
    )
    p.set_defaults(func=cmd_runs)

    from ephemera.cli.logs import add_arguments as add_logs_arguments
    from ephemera.cli.logs import cmd_logs

    p = sub.add_parser("logs", help="a run's logs: the workload's and agent's lines (--all: actions, engine jobs, boot)")
    add_logs_arguments(p)
    p.set_defaults(func=cmd_logs)

    from ephemera.cli.outputs import (
        add_arguments as add_outputs_arguments,
    )  # loaded only when the parser is built (the CLI's cold start)
    from ephemera.cli.outputs import cmd_outputs  # ditto

    p = sub.add_parser("outputs", help="a run's output objects (name, size, link), or --get DIR to fetch them")
    add_outputs_arguments(p)
    p.set_defaults(func=cmd_outputs)

    from ephemera.cli.plan import cmd_plan

    p = sub.add_parser("plan", help="what an apply of the workspace would create, and its estimated cost; creates nothing")
    p.add_argument("--log", action="store_true", help="also print the engine's whole plan output")
    p.add_argument("--prices", action="store_true", help="print the price table instead (on-demand and spot per profile)")
    p.set_defaults(func=cmd_plan)

    from ephemera.cli.dashboard import add_arguments as add_dashboard_arguments
    from ephemera.cli.dashboard import cmd_dashboard

    p = sub.add_parser("dashboard", help="serve a read-only web page of the runs, on 127.0.0.1 unless told otherwise")
    add_dashboard_arguments(p)
    p.set_defaults(func=cmd_dashboard)

    p = sub.add_parser("activations", help="list action invocations of the local runtime")
    add_activations_arguments(p)
    p.set_defaults(func=cmd_activations)

    p = sub.add_parser("invoke", help="invoke an action by hand, e.g. `ephemera invoke destroy run_id=...`")
    p.add_argument("name", help="apply, destroy, reap or status")
    p.add_argument("params", nargs="*", help="key=value (values parsed as JSON when they are JSON)")
    p.add_argument("--url", help="invoke the deployed Code Engine function at this https URL instead of running the action here")
    p.add_argument("--token-file", help="with --url: the file holding the invoke token (default: $EPHEMERA_INVOKE_TOKEN)")
    p.set_defaults(func=cmd_invoke)

    p = sub.add_parser("config", help="validate the config and print it with secrets masked")
    p.add_argument("--schema", action="store_true", help="print the config's JSON Schema instead (for editors)")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("deploy", help="deploy actions, triggers and rules (code-engine, openwhisk)", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("bundle", help="pack the run bundle, or publish it to the state bucket (for workload.bundle)")
    p.add_argument("action", choices=("pack", "publish"))
    p.add_argument("archive", nargs="?", help="publish: a bundle `ephemera bundle pack` wrote (default: pack one now)")
    p.add_argument("--out", help="pack: the folder to write it into (default: <home>/bundles)")
    p.add_argument("--expect", help="publish: refuse an ARCHIVE whose SHA-256 is not this one")
    p.set_defaults(func=cmd_bundle)

    p = sub.add_parser("image", help="build, list or delete the prepared images runs of the same lock start from")
    p.add_argument("action", choices=("build", "list", "delete"))
    p.add_argument("image", nargs="?", help="delete: the image's id (or its lock's SHA-256)")
    p.add_argument("--force", action="store_true", help="build: build again; delete: even while an open run uses it")
    p.add_argument("--demo", action="store_true", help="the image of `ephemera demo`'s workload, in your own home")
    p.add_argument("--builder-workspace", help="build on schematics: the Schematics workspace id made from <cloud>-image-builder")
    p.add_argument("--image-workspace", help="build on schematics: an empty Schematics workspace id made from <cloud>-image")
    p.add_argument("--timeout", type=float, default=3600.0, help="build on a cloud: seconds the builder VM has to power off")
    p.add_argument("--vpc-url", help="the VPC API endpoint the builder VM's power state is read from; default: the region's")
    p.set_defaults(func=cmd_image)

    p = sub.add_parser("lithops-config", help="write a Lithops config for a run's VMs")
    p.add_argument("run_id")
    p.add_argument("--out", "--output", "-o", dest="output", help="file to write, mode 0600 (default: print with secrets masked)")
    p.set_defaults(func=cmd_lithops_config)
    for name, subparser in sub.choices.items():
        if name != "deploy":  # deploy parses its own (ephemera.cli.deploy); main() hands the top-level one over
            add_config_flag(subparser)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ephemera.cli.configflag import (
        SUB_DEST,
        one_config,
        split_deploy,
    )  # lazily: the CLI imports a command's modules when it runs (cold start)

    argv = sys.argv[1:] if argv is None else list(argv)
    deploy = split_deploy(argv)
    try:
        if deploy is not None:  # its targets have their own options, and `deploy --help` is help
            from ephemera.cli.deploy import (
                main as deploy_main,
            )  # lazily: the CLI imports a command's modules when it runs (cold start)

            return deploy_main(deploy[1], top_config=deploy[0])
        args = build_parser().parse_args(argv)
        args.config = one_config([args.config, getattr(args, SUB_DEST, None)])
        if args.command == "demo" and args.config:
            raise ParamError("--config", "the demo writes its own config in a fresh home", "drop --config, or use `--home DIR`")
        return args.func(args)
    except EphemeraError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
