"""``ephemera deploy ...``: package the actions, deploy them to Code Engine or OpenWhisk.

    ephemera deploy package [--target openwhisk|code-engine] [--out PATH] [--no-deps]
    ephemera deploy openwhisk [--dry-run] [--cli "ibmcloud fn"|wsk] [--package NAME] [--no-deps]
    ephemera deploy code-engine [--dry-run] [--project NAME]

All take ``--config FILE`` (default: the usual config locations) and ``--build-dir DIR``.
``--dry-run`` prints every command and runs none. The config's secrets go into a
parameter file / env file (mode 0600, in a private temporary folder removed afterwards),
never onto a command line. ``functions-create.sh`` runs ``openwhisk``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, TextIO

from ephemera.config import load_config
from ephemera.deploy import steps as steps_mod
from ephemera.deploy.code_engine import SECRET, code_engine_plan
from ephemera.deploy.openwhisk import openwhisk_plan
from ephemera.deploy.package import REQUIREMENTS, build_openwhisk_zip, build_source_bundle
from ephemera.errors import EphemeraError
from ephemera.files import write_private

Runner = Callable[[list[str]], int]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ephemera deploy", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="target", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="config file (default: EPHEMERA_CONFIG_FILE, ./.ephemera.yaml, ~/.ephemera/config)")
    common.add_argument("--build-dir", default=".ephemera-build", help="where the zip / source bundle is written")
    p = sub.add_parser("package", parents=[common], help="build the OpenWhisk zip or the Code Engine source bundle")
    p.add_argument("--target", dest="kind", choices=("openwhisk", "code-engine"), default="openwhisk")
    p.add_argument("--out", help="output path (zip file or folder)")
    p.add_argument("--no-deps", action="store_true", help="leave third-party requirements out of virtualenv/")
    p = sub.add_parser("openwhisk", parents=[common], help="deploy with ibmcloud fn / wsk (what functions-create.sh runs)")
    p.add_argument("--dry-run", action="store_true", help="print every command, run none")
    p.add_argument("--cli", default="ibmcloud fn", help="the OpenWhisk CLI: 'ibmcloud fn' (default) or 'wsk'")
    p.add_argument("--package", default="ephemera", help="OpenWhisk package name")
    p.add_argument("--no-deps", action="store_true", help="leave third-party requirements out of the zip")
    p = sub.add_parser("code-engine", parents=[common], help="deploy to IBM Cloud Code Engine")
    p.add_argument("--dry-run", action="store_true", help="print every command, run none")
    p.add_argument("--project", default="ephemera", help="Code Engine project name")
    return parser


def _execute(plan_steps, dry_run: bool, out: TextIO, runner: Runner | None) -> int:
    if dry_run:
        for line in steps_mod.render(plan_steps):
            print(line, file=out)
        return 0
    return steps_mod.run(plan_steps, out, runner)


def deploy_openwhisk(args, out: TextIO, runner: Runner | None = None) -> int:
    config = load_config(args.config)
    build = Path(args.build_dir).resolve()
    zip_path = build / "ephemera-action.zip"
    secrets_dir = tempfile.mkdtemp(prefix="ephemera-deploy-")  # mode 0700
    try:
        param_file = os.path.join(secrets_dir, "params.json")
        plan_steps = openwhisk_plan(config, zip_path=str(zip_path), param_file=param_file, cli=tuple(shlex.split(args.cli)), package=args.package)
        if not args.dry_run:
            build_openwhisk_zip(zip_path, requirements=() if args.no_deps else REQUIREMENTS)
            write_private(param_file, json.dumps({"config": config.to_dict(redact=False)}, default=str))
        return _execute(plan_steps, args.dry_run, out, runner)
    finally:
        shutil.rmtree(secrets_dir, ignore_errors=True)


def deploy_code_engine(args, out: TextIO, runner: Runner | None = None) -> int:
    config = load_config(args.config)
    bundle = Path(args.build_dir).resolve() / "code-engine"
    secrets_dir = tempfile.mkdtemp(prefix="ephemera-deploy-")
    try:
        env_file = os.path.join(secrets_dir, f"{SECRET}.env")
        plan_steps = code_engine_plan(config, project=args.project, bundle_dir=str(bundle), env_file=env_file)
        if not args.dry_run:
            build_source_bundle(bundle)
            config_json = json.dumps(config.to_dict(redact=False), separators=(",", ":"), default=str)
            write_private(env_file, f"EPHEMERA_CONFIG_JSON={config_json}\n")
        return _execute(plan_steps, args.dry_run, out, runner)
    finally:
        shutil.rmtree(secrets_dir, ignore_errors=True)


def package(args, out: TextIO) -> int:
    build = Path(args.build_dir).resolve()
    if args.kind == "openwhisk":
        path = build_openwhisk_zip(Path(args.out) if args.out else build / "ephemera-action.zip", requirements=() if args.no_deps else REQUIREMENTS)
    else:
        path = build_source_bundle(Path(args.out) if args.out else build / "code-engine")
    print(str(path), file=out)
    return 0


def main(argv: list[str] | None = None, *, out: TextIO | None = None, runner: Runner | None = None) -> int:
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    try:
        if args.target == "package":
            return package(args, out)
        if args.target == "openwhisk":
            return deploy_openwhisk(args, out, runner)
        return deploy_code_engine(args, out, runner)
    except EphemeraError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
