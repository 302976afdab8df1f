"""A local VM over a prepared image: check the image's folder, then install only what it lacks.

A prepared image (:mod:`ephemera.bundle.image`) is, locally, a read-only folder under the
Ephemera home holding an environment with a bundle's requirements installed, recorded
against their lock with the folder's *tree digest*. When the boot document names one
(``image``: id, path, site, digest), the bootstrap (:mod:`ephemera.vm.bootstrap`) asks
:func:`image_site`: the folder must exist, its site-packages lie inside it, and its tree
digest equal the recorded one -- else the VM logs a warning and installs the stock way (a
half or altered image never runs). Over a checked image the VM's environment is new and
sees the image's site-packages, then the controller's (two ``.pth`` files), and only
Ephemera's own wheel is installed (``--no-deps``).

Standard library and the bootstrap only; a cloud VM, whose bootstrap ships alone, never
imports it (its prepared image is the machine image itself). The image builder runs it as
a program: ``--digest DIR`` prints a folder's tree digest, ``--build-image`` installs a
bundle into ``<root>/env`` exactly as a stock local VM does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ephemera.vm.bootstrap import BootError, env_python, fetch_bundle, find_uv, install, log, purelib, run

if TYPE_CHECKING:
    from ephemera.model.vmboot import BootDocument

HOST_PTH = "zz-ephemera-host.pth"  # the bootstrap's: the controller's site-packages
IMAGE_PTH = "zy-ephemera-image.pth"  # sorts before the host's, so the image's versions win
CHUNK = 1 << 20


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def tree_digest(folder: Path) -> str:
    """SHA-256 over every entry under ``folder``: relative path, kind, executable bit, and a
    file's content or a link's target (links are never followed)."""
    lines = []
    for top, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(dirs + files):
            path = Path(top) / name
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink():
                lines.append(f"L {rel} {os.readlink(path)}")
            elif path.is_dir():
                lines.append(f"D {rel}")
            else:
                lines.append(f"F {rel} {'x' if os.access(path, os.X_OK) else '-'} {_file_sha256(path)}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def image_site(root: Path, boot: BootDocument) -> Path | None:
    """The site-packages of the boot document's image once its folder is checked; None (the
    stock install, with a warning in the bootstrap log) when it is missing or altered."""
    image: dict = dict(boot.get("image") or {})  # untyped here: every field is checked below
    try:
        folder = Path(str(image["path"]))
        if folder.is_symlink() or not folder.is_dir():
            raise BootError(f"its folder {folder} is missing")
        site = (folder / str(image["site"])).resolve()
        if folder.resolve() not in site.parents or not site.is_dir():
            raise BootError(f"its site-packages '{image['site']}' is not a folder inside it")
        started = time.monotonic()
        if tree_digest(folder) != image["digest"]:
            raise BootError(f"its folder {folder} no longer has the digest it was recorded with (altered since)")
        log(root, f"image {image['id']} checked in {time.monotonic() - started:.1f}s")
        return site
    except (BootError, KeyError, TypeError, OSError) as exc:
        log(root, f"WARNING: prepared image {image.get('id', '?')} not used ({exc}); installing the stock way")
        return None


def install_over_image(root: Path, boot: BootDocument, bundle: Path, manifest: dict, env: Path, site: Path) -> None:
    """A new environment that sees the image's site-packages, then the controller's, with
    Ephemera's own wheel installed over them (``--no-deps``: the image holds the rest)."""
    python = boot.get("python") or sys.executable
    run(root, [python, "-m", "venv", "--without-pip", str(env)], "creating the environment over the image")
    own = purelib(root, env)
    # the image's folder is checked by its digest: no process of the run writes byte code into it
    (own / IMAGE_PTH).write_text(f"{site}\nimport sys; sys.dont_write_bytecode = True\n")
    (own / HOST_PTH).write_text("".join(p + "\n" for p in boot.get("inherit_site") or []))
    wheel = str(bundle / "wheels" / manifest["wheel"])
    uv = find_uv(boot)
    if uv:  # a tenth of pip's time for one wheel: most of what is left of the install
        cmd = [
            uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            str(env_python(env)),
            "--no-config",
            "--no-index",
            "--no-deps",
            "--reinstall",
            "--compile-bytecode",
        ]
        run(root, cmd + [wheel], "installing Ephemera's wheel over the image (uv)", {"UV_LINK_MODE": "copy"})
    else:
        pip = [python, "-m", "pip", "--python", str(env_python(env)), "install", "--disable-pip-version-check", "--no-input"]
        run(
            root,
            pip + ["--no-index", "--ignore-installed", "--no-deps", wheel],
            "installing Ephemera's wheel over the image (pip)",
        )


def build_image(boot_file: Path, root: Path) -> int:
    """Install the boot document's bundle into ``<root>/env`` as a stock local VM does, less
    the workload's source (an image holds an environment, not a run's code)."""
    boot = json.loads(boot_file.read_text())
    root.mkdir(parents=True, exist_ok=True)
    try:
        bundle = fetch_bundle(root, boot)
        install(root, boot, bundle)
        (purelib(root, root / "env") / "ephemera-workload.pth").unlink(missing_ok=True)
    except Exception as exc:  # noqa: BLE001 - the builder reports it with the log's tail
        log(root, f"image build failed: {type(exc).__name__}: {exc}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ephemera.vm.imageboot", description="Prepared images on this machine.")
    parser.add_argument("--digest", metavar="DIR", help="print the tree digest of a folder")
    parser.add_argument("--build-image", metavar="BOOT", help="install the boot document's bundle into <root>/env")
    parser.add_argument("--root", help="with --build-image: the folder to build in")
    args = parser.parse_args(argv)
    if args.digest:
        print(tree_digest(Path(args.digest)))
        return 0
    if args.build_image and args.root:
        return build_image(Path(args.build_image), Path(args.root))
    parser.error("give --digest DIR, or --build-image BOOT --root DIR")
    return 2


if __name__ == "__main__":
    sys.exit(main())
