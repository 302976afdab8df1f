"""``ephemera image build|list|delete``: prepared images that runs of the same lock start from.

    ephemera image build [--force]      build the image of the config's workload (local stack), or
                                        say the recorded one is current; print its id and what it holds
    ephemera image build --demo         the same for ``ephemera demo``'s workload, in the user's home:
                                        ``make demo`` (a fresh home each time) then starts from it
                                        (``list --demo``, ``delete ID --demo``: the demo's images)
    ephemera image list                 the images recorded in the state bucket, and whether each is usable
    ephemera image delete ID [--force]  delete an image (its record, then its folder); refused while an
                                        open run uses it, unless --force

A run whose lock matches a recorded image uses it by itself (:mod:`ephemera.bundle.image`).
"""

from __future__ import annotations

from typing import TextIO

from ephemera.bundle.image import ImageRecord, list_records, local_path_problem
from ephemera.bundle.imagebuild import build_local, delete_image
from ephemera.cli.tables import human_size, table
from ephemera.errors import ImageError, ParamError


def _status(config, record: ImageRecord) -> str:
    if record.kind != "local":
        return "recorded"
    problem = local_path_problem(config, record)
    return f"unusable: {problem}" if problem else "ready"


def cmd_build(ctx, force: bool, out: TextIO) -> int:
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
    delete_image(ctx.config, ctx.storage, record)
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
        return cmd_build(ctx, args.force, out)
    if args.action == "list":
        return cmd_list(ctx, out)
    return cmd_delete(ctx, args.image, args.force, out)
