"""Ephemera as a wheel, built from the running installation, reproducibly.

The VMs must run exactly the controller's version, so the wheel is made from what
this process imports: every module of the ``ephemera`` and ``lithops_bridge`` packages,
the Terraform stacks as ``ephemera/stacks`` package data (``*.tf`` and ``*.tftpl``, from
wherever this installation keeps them: the package's ``stacks/`` folder when installed,
the repository's ``terraform/`` in a checkout), plus the installed
distribution's ``METADATA`` and ``entry_points.txt`` (dependencies, extras and the
``ephemera.vm_services`` entry points). It works the same for an editable checkout,
an installed wheel or a vendored action package. Entries are sorted, dated
1980-01-01, mode 0644: the same code gives the same bytes, hence the same hash.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.util
import os
import zipfile
from pathlib import Path
from typing import Iterator

from ephemera.stack import STACKS_DIR
from ephemera.stack.spec import SPEC_FILE
from ephemera.errors import ConfigError

DIST = "ephemera"
PACKAGES = ("ephemera", "lithops_bridge")
DATA_SUFFIXES = (".tf", ".tftpl")  # package data: the Terraform stacks (and each one's SPEC_FILE)
SKIP_PARTS = {"__pycache__", ".terraform"}
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can carry
TAG = "py3-none-any"


def _package_dir(name: str) -> Path:
    """The folder of top-level package ``name``, found without importing it: the core
    must not import ``lithops_bridge`` (the layer contract), it only packs its files."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "workload.bundle",
            f"the package '{name}' is not installed here, so no run bundle can be packed",
            "install Ephemera with its lithops_bridge package (pip install ephemera), or set workload.bundle",
        )
    return Path(list(spec.submodule_search_locations)[0]).resolve()


def _walk(root: Path) -> Iterator[Path]:
    """Every file under ``root``, caches left out; a linked folder is not followed."""
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_PARTS]
        for name in names:
            yield Path(folder) / name


def package_files() -> list[tuple[str, Path]]:
    """(path inside the wheel, file on disk) for every file the wheel carries, sorted."""
    files = []
    for name in PACKAGES:
        root = _package_dir(name)
        for path in _walk(root):
            rel = path.relative_to(root)
            if path.suffix == ".py" and path.is_file() and rel.parts[0] != "stacks":
                files.append((f"{name}/{rel.as_posix()}", path))
    for path in _walk(STACKS_DIR):
        if (path.suffix in DATA_SUFFIXES or path.name == SPEC_FILE) and path.is_file():
            files.append((f"ephemera/stacks/{path.relative_to(STACKS_DIR).as_posix()}", path))
    return sorted(files)


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def installed_distribution() -> importlib.metadata.Distribution:
    """Ephemera's installed distribution: its ``.dist-info`` (a checkout's stray
    ``.egg-info`` in the working directory is not what pip installed)."""
    found = list(importlib.metadata.distributions(name=DIST))
    for dist in found:
        if dist.read_text("METADATA"):
            return dist
    if found and found[0].read_text("PKG-INFO"):
        return found[0]
    raise ConfigError(
        "workload.bundle",
        "Ephemera's distribution metadata is not installed here, so no run bundle can be packed (a deployed action has none)",
        "deploy with `ephemera deploy`, which publishes the bundle and sets "
        "workload.bundle, or publish one with `ephemera bundle publish` and set workload.bundle",
    )


def wheel_name() -> str:
    return f"{DIST}-{installed_distribution().version}-{TAG}.whl"


def build_wheel(out_dir: str | Path) -> Path:
    """Write Ephemera's wheel into ``out_dir`` and return its path."""
    dist = installed_distribution()
    info = f"{DIST}-{dist.version}.dist-info"
    entries: list[tuple[str, bytes]] = [(arc, path.read_bytes()) for arc, path in package_files()]
    entries.append((f"{info}/METADATA", (dist.read_text("METADATA") or dist.read_text("PKG-INFO") or "").encode()))
    entries.append(
        (f"{info}/WHEEL", f"Wheel-Version: 1.0\nGenerator: ephemera.bundle\nRoot-Is-Purelib: true\nTag: {TAG}\n".encode())
    )
    entry_points = dist.read_text("entry_points.txt")
    if entry_points:
        entries.append((f"{info}/entry_points.txt", entry_points.encode()))
    record = "\n".join([_record_line(n, d) for n, d in entries] + [f"{info}/RECORD,,"]) + "\n"
    entries.append((f"{info}/RECORD", record.encode()))
    out = Path(out_dir) / wheel_name()
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name, data in entries:
            item = zipfile.ZipInfo(name, ZIP_DATE)
            item.external_attr = 0o644 << 16
            item.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(item, data)
    return out
