"""``ephemera deploy ...``: package the actions, deploy them to Code Engine or OpenWhisk.

    ephemera deploy package [--target openwhisk|code-engine] [--out PATH]
    ephemera deploy openwhisk [--dry-run] [--out DIR] [--cli wsk|"ibmcloud fn"]
    ephemera deploy code-engine [--dry-run] [--out DIR] [--project NAME] [--rotate-invoke-token]
    ephemera deploy aws [--dry-run] [--out DIR]

All take ``--config FILE`` (default: the usual config locations). The package (zip or
source folder) is built into ``--out DIR`` (default ``.ephemera-build``). The config's
secrets go into a parameter file (OpenWhisk) or an env file (Code Engine), mode 0600,
never onto a command line: a real deploy writes it into a private temporary folder
removed afterwards; ``--dry-run`` runs nothing and writes every file its commands
reference into DIR (the secret file 0600; DIR created 0700 when missing, else it must
be the caller's and writable by no one else, and its mode is left alone) with the plan
as ``DIR/plan.sh`` (0700), so the printed commands can be run as they are. Nothing is
written through a symbolic link. ``functions-create.sh`` runs
``openwhisk``.

``code-engine`` also binds the functions' invoke token (the ``ephemera-invoke``
secret, from its own 0600 env file): made once per project and kept in
``<home>/deploy/code-engine-<project>.invoke-token`` (0600), re-used by every later
deploy unless ``--rotate-invoke-token``; ``ephemera invoke ACTION --url URL
--token-file FILE`` reads it from there.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, TextIO

from ephemera.bundle.pack import pack
from ephemera.bundle.store import bound_config, publish_config_bundle, stored
from ephemera.assembly import find_config_file, load_config, with_signing_key
from ephemera.cli.configflag import HELP, one_config
from ephemera.config import Config
from ephemera.deploy import steps as steps_mod
from ephemera.deploy import invoke_token
from ephemera.deploy.bound import DIGEST_PARAM, config_digest
from ephemera.deploy.code_engine import SECRET, check_runtime, code_engine_plan, invoke_env_file_for
from ephemera.deploy.aws.image import build_context_wheels
from ephemera.deploy.aws.package import build_lambda_zip
from ephemera.deploy.aws.package import requirements as aws_requirements
from ephemera.deploy.aws.plan import aws_plan
from ephemera.config.aws_lambda import AwsLambdaSection
from ephemera.deploy.openwhisk import openwhisk_plan
from ephemera.deploy.package import action_extras, build_openwhisk_zip, build_source_bundle
from ephemera.config.deploy_targets import CodeEngineSection
from ephemera.errors import EphemeraError
from ephemera.files import private_dir, write_private
from ephemera.storage import get_storage

Runner = Callable[[list[str]], int]
PREREQUISITES = (
    "# before these commands: `ibmcloud login`, `ibmcloud target -r REGION -g RESOURCE_GROUP`, and the "
    "Code Engine plugin (`ibmcloud plugin install code-engine`); they run in that account and region"
)
DEFAULT_OUT = ".ephemera-build"
ZIP_NAME = "ephemera-action.zip"
RETIRED = (
    "# note: IBM Cloud Functions is retired (no new entities since 2023-12-28, end of life October 2024); "
    "this deploys only to a namespace that still exists"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ephemera deploy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", "-c", dest="deploy_config", metavar="FILE", help=HELP)
    sub = parser.add_subparsers(dest="target", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", metavar="FILE", help=HELP)
    p = sub.add_parser("package", parents=[common], help="build the OpenWhisk zip or the Code Engine source folder")
    p.add_argument("--target", dest="kind", choices=("openwhisk", "code-engine"), default="openwhisk")
    p.add_argument("--out", help=f"the zip file or source folder (default {DEFAULT_OUT}/{ZIP_NAME} or {DEFAULT_OUT}/code-engine)")
    plan = argparse.ArgumentParser(add_help=False, parents=[common])
    plan.add_argument(
        "--dry-run", action="store_true", help="run nothing: write the plan and every file it references into --out"
    )
    plan.add_argument(
        "--out",
        "--build-dir",
        dest="out",
        default=DEFAULT_OUT,
        help=f"where the package (and a dry run's files) go (default {DEFAULT_OUT})",
    )
    p = sub.add_parser("openwhisk", parents=[plan], help="deploy with wsk (what functions-create.sh runs)")
    p.add_argument(
        "--cli",
        default="wsk",
        help="the OpenWhisk CLI: wsk (default), or 'ibmcloud fn' for a remaining IBM Cloud Functions namespace (retired)",
    )
    p = sub.add_parser("code-engine", parents=[plan], help="deploy to IBM Cloud Code Engine")
    p.add_argument("--project", help="Code Engine project name (default: code_engine.project)")
    p.add_argument(
        "--rotate-invoke-token",
        action="store_true",
        help="make a new invoke token for the functions (callers holding the old one are refused from then on)",
    )
    sub.add_parser("aws", parents=[plan], help="deploy to AWS Lambda, EventBridge Scheduler and S3 notifications (aws CLI)")
    return parser


def _say(out: TextIO) -> Callable[[str], None]:
    return lambda text: print(f"# {text}", file=out)


def _secret_dir(dry_run: bool, out_dir: Path) -> tuple[Path, bool]:
    """Where the secret file goes: the plan's folder (kept) for a dry run, else a private temporary folder."""
    if dry_run:
        return private_dir(out_dir, "--out"), False
    return Path(tempfile.mkdtemp(prefix="ephemera-deploy-")), True  # mode 0700


def _bind_bundle(config: Config, args, out_dir: Path, out: TextIO) -> tuple[Config, list[steps_mod.Step]]:
    """The config as deployed, with ``workload.bundle`` naming the published run bundle.

    A deployed action has neither the workload folder nor an installed distribution to
    pack one from, so the bundle is published from here: now, or -- for ``--dry-run``,
    which changes nothing -- by the plan's first step, from the archive packed into DIR
    (packing is reproducible: the hash bound is the hash published). The workload's
    source and requirements-file paths are dropped from the deployed config: the bundle
    carries them."""
    if config.workload.bundle:  # pinned: it must be there (a dry run checks nothing remote)
        if not args.dry_run:
            stored(get_storage(config), config.state_bucket, config.workload.bundle)
        return with_signing_key(config), []  # deployed actions derive the same run keys as this machine
    first: list[steps_mod.Step] = []
    if args.dry_run:
        bundle = pack(config, out_dir / "bundles")
        sha256, requirements = bundle.sha256, bundle.manifest["requirements"]
        source = config.source if config.source and not config.source.startswith("<") else None
        where = ["--config", str(Path(source).resolve())] if source else []  # the same state bucket, wherever it runs
        first.append(
            steps_mod.Step(
                f"the run bundle {sha256[:12]} in {config.state_bucket}",
                [sys.executable, "-m", "ephemera.cli", *where, "bundle", "publish", str(bundle.path), "--expect", sha256],
            )
        )
    else:
        ref = publish_config_bundle(config, get_storage(config))
        sha256, requirements = ref.sha256, ref.requirements
        _say(out)(f"run bundle {'already in' if ref.reused else 'published to'} {config.state_bucket}/{ref.key}")
    return bound_config(config, sha256, requirements), first


def _finish(plan_steps, args, out: TextIO, runner: Runner | None, out_dir: Path, secret_file: Path, header: list[str]) -> int:
    for line in header:
        print(line, file=out)
    if not args.dry_run:
        return steps_mod.run(plan_steps, out, runner)
    lines = steps_mod.render(plan_steps)
    script = write_private(
        out_dir / "plan.sh",
        "#!/usr/bin/env bash\n# written by `ephemera deploy "
        + args.target
        + " --dry-run`\nset -euo pipefail\n"
        + "\n".join(lines)
        + "\n",
        mode=0o700,
    )
    for line in lines:
        print(line, file=out)
    print(f"# plan written to {script}; {secret_file} holds the config's secrets (mode 0600): delete it after use", file=out)
    return 0


def deploy_openwhisk(args, out: TextIO, runner: Runner | None = None) -> int:
    config = load_config(args.config)
    out_dir = Path(args.out).resolve()
    cli = tuple(shlex.split(args.cli))
    secret_dir, temporary = _secret_dir(args.dry_run, out_dir)
    try:
        param_file = secret_dir / "params.json"
        zip_path = out_dir / ZIP_NAME
        config, first = _bind_bundle(config, args, out_dir, out)
        plan_steps = first + openwhisk_plan(config, zip_path=str(zip_path), param_file=str(param_file), cli=cli)
        build_openwhisk_zip(zip_path, extras=action_extras(config), wheel_dir=out_dir / "wheels", say=_say(out))
        bound = config.to_dict(redact=False)
        write_private(param_file, json.dumps({"config": bound, DIGEST_PARAM: config_digest(bound)}, default=str))
        header = [RETIRED] if "ibmcloud" in cli else []
        return _finish(plan_steps, args, out, runner, out_dir, param_file, header)
    finally:
        if temporary:
            shutil.rmtree(secret_dir, ignore_errors=True)


def _bind_invoke_token(config: Config, args, env_file: Path) -> str:
    """Write the invoke token's env file (0600) from the owner's kept copy (made now if
    missing or rotated); the line that tells where the copy is (never the token)."""
    project = args.project or config.section(CodeEngineSection).project
    kept = invoke_token.token_file(config.home, project)
    token, made = invoke_token.load_or_create(kept, rotate=args.rotate_invoke_token)
    write_private(env_file, f"{invoke_token.TOKEN_ENV}={token}\n")
    how = "made now" if made else "re-used"
    return (
        f"# invoke token ({how}) kept in {kept} (mode 0600): `ephemera invoke ACTION --url URL --token-file {kept}`; "
        f"the functions refuse requests without it"
    )


def _python_of(config: Config) -> str:
    return config.section(CodeEngineSection).runtime.partition("-")[2]


def deploy_code_engine(args, out: TextIO, runner: Runner | None = None) -> int:
    config = load_config(args.config)
    out_dir = Path(args.out).resolve()
    secret_dir, temporary = _secret_dir(args.dry_run, out_dir)
    try:
        env_file = secret_dir / f"{SECRET}.env"
        bundle = out_dir / "code-engine"
        config, first = _bind_bundle(config, args, out_dir, out)
        invoke_env_file = Path(invoke_env_file_for(str(env_file)))
        plan_steps = first + code_engine_plan(
            config, project=args.project, bundle_dir=str(bundle), env_file=str(env_file), invoke_env_file=str(invoke_env_file)
        )
        warning = check_runtime(config.section(CodeEngineSection).runtime)
        build_source_bundle(
            bundle, python=_python_of(config), extras=action_extras(config), wheel_dir=out_dir / "wheels", say=_say(out)
        )
        config_json = json.dumps(config.to_dict(redact=False), separators=(",", ":"), default=str)
        write_private(env_file, f"EPHEMERA_CONFIG_JSON={config_json}\n")  # one unquoted KEY=VALUE line
        header = [f"# warning: {warning}"] if warning else []
        header.append(PREREQUISITES)
        header.append(_bind_invoke_token(config, args, invoke_env_file))
        return _finish(plan_steps, args, out, runner, out_dir, env_file, header)
    finally:
        if temporary:
            shutil.rmtree(secret_dir, ignore_errors=True)


def deploy_aws(args, out: TextIO, runner: Runner | None = None) -> int:
    """The config in a Secrets Manager secret (from a 0600 file), the functions from the
    Lambda zip, their roles, schedules and S3 notifications (:mod:`ephemera.deploy.aws.plan`)."""
    config = load_config(args.config)
    out_dir = Path(args.out).resolve()
    secret_dir, temporary = _secret_dir(args.dry_run, out_dir)
    try:
        secret_file = secret_dir / "aws-config-secret.json"
        files_dir = (out_dir if args.dry_run else secret_dir) / "aws"
        config, first = _bind_bundle(config, args, out_dir, out)
        bound = config.to_dict(redact=False)
        extras = action_extras(config)
        needs_ibm = "ibm" in extras  # the source-only IBM SDKs are built into wheels only when a backend needs them
        plan = aws_plan(
            config,
            zip_path=str(out_dir / "ephemera-lambda.zip"),
            secret_file=str(secret_file),
            config_sha256=config_digest(bound),
            files_dir=str(files_dir),
            extra_requirements=tuple(r for r in aws_requirements(extras) if r not in aws_requirements(())),
        )
        settings = config.section(AwsLambdaSection)
        if plan.image_context:  # the Terraform functions' image: its wheels beside the rendered Dockerfile
            build_context_wheels(Path(plan.image_context), needs_ibm, out_dir / "wheels", _say(out))
        build_lambda_zip(
            out_dir / "ephemera-lambda.zip",
            python=settings.runtime.removeprefix("python"),
            architecture=settings.architecture,
            extras=extras,
            wheel_dir=out_dir / "wheels",
            say=_say(out),
        )
        for relative, content in plan.files.items():
            write_private(files_dir / relative, content)
        write_private(secret_file, json.dumps(bound, default=str))
        header = [
            f"# {len(plan.functions)} functions, none with a URL: direct ones are invoked by IAM principals "
            "allowed lambda:InvokeFunction, -events ones by this account's S3 buckets and schedules"
        ]
        return _finish(first + plan.steps, args, out, runner, out_dir, secret_file, header)
    finally:
        if temporary:
            shutil.rmtree(secret_dir, ignore_errors=True)


def package(args, out: TextIO) -> int:
    config = load_config(args.config)
    wheels = Path(DEFAULT_OUT).resolve() / "wheels"
    if args.kind == "openwhisk":
        path = build_openwhisk_zip(
            Path(args.out) if args.out else Path(DEFAULT_OUT) / ZIP_NAME,
            extras=action_extras(config),
            wheel_dir=wheels,
            say=_say(out),
        )
    else:
        path = build_source_bundle(
            Path(args.out) if args.out else Path(DEFAULT_OUT) / "code-engine",
            python=_python_of(config),
            extras=action_extras(config),
            wheel_dir=wheels,
            say=_say(out),
        )
    print(str(path), file=out)
    return 0


def main(
    argv: list[str] | None = None, *, out: TextIO | None = None, runner: Runner | None = None, top_config: str | None = None
) -> int:
    """``top_config``: an ``ephemera --config FILE deploy ...`` written before ``deploy``."""
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    try:
        args.config = one_config([top_config, args.deploy_config, args.config])
        if args.target != "package":
            _say(out)(f"config: {Path(args.config).resolve() if args.config else (find_config_file() or 'the defaults')}")
        if args.target == "package":
            return package(args, out)
        if args.target == "openwhisk":
            return deploy_openwhisk(args, out, runner)
        if args.target == "aws":
            return deploy_aws(args, out, runner)
        return deploy_code_engine(args, out, runner)
    except EphemeraError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
