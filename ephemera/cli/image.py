"""``ephemera image build|list|delete``: prepared images that runs of the same lock start from.

    ephemera image build [--force]      build the image of the config's workload, or say the recorded
                                        one is current; print its id and what it holds. On aws-ec2-gpu /
                                        ibm-vpc-gpu: a builder VM that powers off and becomes the image
                                        (:mod:`ephemera.bundle.cloudimage`); with the schematics engine
                                        name the two workspaces: --builder-workspace ID --image-workspace ID
    ephemera image build --demo         the same for ``ephemera demo``'s workload, in the user's home:
                                        ``make demo`` (a fresh home each time) then starts from it
                                        (``list --demo``, ``delete ID --demo``: the demo's images)
    ephemera image list                 the images recorded in the state bucket, and whether each is usable
    ephemera image delete ID [--force]  delete an image (local: its record, then its folder; cloud: its
                                        workspace, then its record); refused while an open run uses it,
                                        unless --force

A run whose lock matches a recorded image uses it by itself (:mod:`ephemera.bundle.image`).
"""

from __future__ import annotations

import secrets
from typing import TextIO

from ephemera.bundle.image import ImageRecord, list_records, local_path_problem, lock_sha256
from ephemera.bundle.imagebuild import build_local, delete_image
from ephemera.cli.tables import human_size, table
from ephemera.errors import ImageError, ParamError
from ephemera.stack import config_stack


class _Flags:
    """The flags of a build called without parsed arguments (tests, the demo)."""

    def __init__(self, force: bool):
        self.force = force


def _status(config, record: ImageRecord) -> str:
    if record.kind != "local":
        return f"recorded; workspace {record.workspace}" if record.workspace else "recorded; no workspace (built elsewhere)"
    problem = local_path_problem(config, record)
    return f"unusable: {problem}" if problem else "ready"


def cmd_build_cloud(ctx, args, out: TextIO) -> int:
    from ephemera.bundle.cloudimage import build_cloud, cloud_lock  # only for cloud builds (their engines, SDKs)
    from ephemera.bundle.imagestacks import BuildPlace, cloud_of, default_stacks  # ditto

    stack = str(ctx.config.workspace.stack)
    cloud = cloud_of(stack)
    lock_text, requirements = cloud_lock(ctx.config)
    suffix = lock_sha256(lock_text)[:12]
    place = BuildPlace(
        cloud=cloud,
        engine=ctx.config.engine.backend,
        builder_workspace=f"image-builder-{suffix}-{secrets.token_hex(4)}",  # one per build: a dead one's is the reaper's
        image_workspace=f"image-{suffix}",
        stacks=default_stacks(),
        builder_workspace_id=getattr(args, "builder_workspace", None),
        image_workspace_id=getattr(args, "image_workspace", None),
        vpc_url=getattr(args, "vpc_url", None),
    )
    print(f"building the {cloud} image of lock {suffix} (the builder VM installs it, then powers off)...", file=out)
    record, built = build_cloud(
        ctx.config,
        ctx.storage,
        place,
        lock_text,
        requirements,
        force=args.force,
        timeout=getattr(args, "timeout", 3600.0),
        variables=dict(ctx.config.workspace.variables or {}),
    )
    how = f"built (build {record.build_id}; its builder is destroyed)" if built else "already built (delete it to build again)"
    print(f"image {record.id} {how}; held by workspace {record.workspace}", file=out)
    print(f"  lock {record.lock_sha256}", file=out)
    return 0


def cmd_build(ctx, force: bool, out: TextIO, args=None) -> int:
    if not config_stack(ctx.config).vms_on_host:
        return cmd_build_cloud(ctx, args if args is not None else _Flags(force), out)
    record, built = build_local(ctx.config, ctx.storage, force=force)
    how = "built" if built else "already built (use --force to build again)"
    print(f"image {record.id} {how}: {record.path} ({human_size(record.size)})", file=out)
    print(f"  lock {record.lock_sha256}; holds {', '.join(record.holds) or 'nothing beyond this environment'}", file=out)
    print("  runs of this workload on this stack now start from it", file=out)
    return 0


def cmd_list(ctx, out: TextIO) -> int:
    rows = []
    for item in list_records(ctx.storage, ctx.config.state_bucket):
        if isinstance(item, ImageError):
            rows.append(["?", "", "", "", "", f"unusable record: {item.message}"])
            continue
        rows.append(
            [item.id, item.stack, item.lock_sha256[:12], human_size(item.size), item.built_at[:19], _status(ctx.config, item)]
        )
    print(table(["ID", "STACK", "LOCK", "SIZE", "BUILT", "STATUS"], rows) if rows else "no images recorded", file=out)
    return 0


def _users(ctx, record: ImageRecord) -> list[str]:
    return [r.run_id for r in ctx.ledger.list() if r.state != "DESTROYED" and (r.bundle or {}).get("image") == record.id]


def cmd_delete(ctx, name: str | None, force: bool, out: TextIO) -> int:
    if not name:
        raise ParamError("image", "names no image", "give the id `ephemera image list` shows")
    found = [r for r in list_records(ctx.storage, ctx.config.state_bucket) if isinstance(r, ImageRecord)]
    record = next((r for r in found if name in (r.id, r.lock_sha256)), None)
    if record is None:
        raise ParamError("image", f"'{name}' is no recorded image", "give the id `ephemera image list` shows")
    users = _users(ctx, record)
    if users and not force:
        raise ParamError(
            "image", f"{record.id} is in use by open run(s) {', '.join(users)}", "wait until they are destroyed, or add --force"
        )
    if record.kind == "local":
        delete_image(ctx.config, ctx.storage, record)
    else:
        from ephemera.bundle.cloudimage import delete_cloud, place_of_record  # only for cloud images (their engines)

        delete_cloud(ctx.config, ctx.storage, record, place_of_record(record), force=force)
    print(f"image {record.id} deleted", file=out)
    return 0


def demo_context():
    """The context of ``ephemera demo``'s config in the user's own home, whose image the demo
    adopts (:func:`ephemera.cli.demo.adopt_image`)."""
    from ephemera.cli.demo import demo_config, user_home  # only for --demo (the demo's module loads the runtime's)
    from ephemera.context import Context  # ditto

    return Context(demo_config(user_home()))


def cmd_image(ctx, args, out: TextIO) -> int:
    if args.action == "build":
        return cmd_build(ctx, args.force, out, args)
    if args.action == "list":
        return cmd_list(ctx, out)
    return cmd_delete(ctx, args.image, args.force, out)
