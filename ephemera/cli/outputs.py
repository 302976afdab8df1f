"""``ephemera outputs RUN_ID [--get DIR]``: a run's output objects, listed or fetched.

The list gives each object's name (its key below the run's output prefix), size and a
link that carries no credential: a ``file://`` path on localhost storage, else
``<backend>://bucket/key``. ``--presign`` makes the links HTTPS URLs anyone holding
them can read for an hour; they name the storage key id, which Ephemera otherwise masks
as a secret, so they are made only when asked for, with a warning.

``--get DIR`` writes each object to ``DIR/<name>``. The names were written by whoever
can write the output prefix -- the run's VMs, so the workload and every package it
installed -- so each is checked before anything is written: a name that is absolute,
has an empty, ``.`` or ``..`` part, a backslash or a control character, or that is both
a file and a folder, would land outside DIR or somewhere unexpected, and the whole
fetch is refused naming it (nothing half-fetched). Files are written through a
temporary file and a rename, never through a symbolic link, and a folder that
resolves outside DIR is refused.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Callable

from ephemera.cli.results import OutputObject, output_objects
from ephemera.cli.tables import human_size, table, visible
from ephemera.context import Context
from ephemera.errors import ParamError
from ephemera.storage.base import Storage

CHUNK = 8 * 1024 * 1024  # bytes fetched per ranged GET: a large output never sits whole in memory
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id")
    p.add_argument("--get", metavar="DIR", help="fetch every output object into DIR (created if missing)")
    p.add_argument("--no-links", action="store_true", help="list names and sizes only")
    p.add_argument(
        "--presign",
        action="store_true",
        help="links as HTTPS URLs anyone holding them can read for an hour (they name the storage key id)",
    )


def unsafe_name(name: str) -> str | None:
    """Why ``name`` cannot be a path below the fetch folder, or None if it can."""
    if not name:
        return "it is empty (the key is the prefix itself)"
    if name.startswith("/"):
        return "it is absolute"
    if "\\" in name:
        return "it has a backslash"
    if _CONTROL.search(name):
        return "it has a control character"
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "it has an empty, '.' or '..' part"
    return None


def check_names(objects: list[OutputObject]) -> None:
    """ParamError naming every object whose name cannot be fetched safely (before any is)."""
    problems = [f"'{visible(o.name)}' ({why})" for o in objects if (why := unsafe_name(o.name))]
    files = {o.name for o in objects}
    folders = {"/".join(o.name.split("/")[:i]) for o in objects for i in range(1, o.name.count("/") + 1)}
    problems += [f"'{visible(name)}' (it is both a file and a folder)" for name in sorted(files & folders)]
    if problems:
        raise ParamError(
            "--get",
            f"refusing to fetch: {len(problems)} output key(s) would not stay inside the folder: " + ", ".join(problems),
            "nothing was written; remove or rename those objects in the bucket and fetch again",
        )


def _copy(storage: Storage, bucket: str, obj: OutputObject, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            if obj.size <= CHUNK:
                fh.write(storage.get(bucket, obj.key))
            else:
                for start in range(0, obj.size, CHUNK):
                    fh.write(storage.get(bucket, obj.key, (start, min(start + CHUNK, obj.size) - 1)))
        os.replace(tmp, target)  # replaces a link planted meanwhile, never writes its target
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def fetch(storage: Storage, bucket: str, objects: list[OutputObject], folder: str) -> list[Path]:
    """Write every object below ``folder``; the paths written, in order."""
    check_names(objects)
    root = Path(folder).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    real_root = root.resolve()
    written = []
    for obj in objects:
        target = root.joinpath(*obj.name.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.parent.resolve().is_relative_to(real_root):
            raise ParamError(
                "--get",
                f"refusing to write '{visible(obj.name)}': its folder leads outside {root} (a symbolic link in the way)",
                "fetch into a new, empty folder",
            )
        if target.is_symlink() or target.is_dir():
            raise ParamError(
                "--get",
                f"refusing to write '{visible(obj.name)}': {target} is a {'symbolic link' if target.is_symlink() else 'folder'}",
                "fetch into a new, empty folder",
            )
        _copy(storage, bucket, obj, target)
        written.append(target)
    return written


def show_outputs(ctx: Context, args, out: Callable[[str], None] = print) -> int:
    run = ctx.ledger.get(args.run_id)  # RunNotFoundError names the run
    if run.job is None:
        out(f"run {run.run_id} has no job (it never requested a workload): no outputs")
        return 0
    presign = getattr(args, "presign", False)
    bucket, prefix, objects = output_objects(ctx, run, links=not (args.no_links or args.get), presign=presign)
    if not objects:
        out(f"no objects under {bucket}/{prefix} (yet): run {run.run_id} is {run.state}")
        return 0
    if args.get:
        paths = fetch(ctx.storage, bucket, objects, args.get)
        total = sum(o.size for o in objects)
        out(f"fetched {len(paths)} object(s), {human_size(total)}, from {bucket}/{prefix} into {args.get}")
        return 0
    out(f"{len(objects)} object(s) under {bucket}/{prefix}:")
    if presign and not ctx.storage.traits.same_host:
        print(
            "warning: each link lets anyone who holds it read that object for an hour, and names the storage "
            "key id: share it as you would the object",
            file=sys.stderr,
        )
    headers = ["NAME", "SIZE"] + ([] if args.no_links else ["LINK (1 h)" if presign else "LINK"])
    out(table(headers, [[o.name, human_size(o.size)] + ([] if args.no_links else [o.link or "-"]) for o in objects]))
    return 0


def cmd_outputs(args) -> int:
    return show_outputs(Context(args.config), args)
