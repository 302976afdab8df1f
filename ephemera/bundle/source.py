"""What of ``workload.source`` a run bundle may carry: code, never the config or a key.

A bundle is kept for good and installed on every VM of every run that names it, so
what goes in is chosen defensively:

- the ignore rules: :data:`DEFAULT_IGNORE` (build debris, and the usual homes of keys
  and credentials: ``.env*``, ``*.pem``, ``*.key``, ssh keys, ``.aws/``, ``.ssh/``,
  ``.netrc``, Ephemera config files), then ``workload.ignore`` and the lines of a
  ``.ephemeraignore`` file in the folder (glob patterns matched against each path and
  its name; a pattern ending in ``/`` matches folders);
- the config file the run was loaded from, whatever its name, is never packed;
- a symlink to a file inside the folder is packed as that file's content; a symlink
  that resolves outside the folder (or nowhere), and a symlinked folder, are refused
  with a :class:`~ephemera.errors.ConfigError` naming the link;
- a file that holds one of the config's secret values, in any encoding the scrubber
  knows (raw, JSON, URL, base64, ...), refuses the packing, naming the file.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Iterable

from ephemera.errors import ConfigError
from ephemera.secrets import Scrubber, encoded_forms

IGNORE_FILE = ".ephemeraignore"
BUILD_DEBRIS = (".git/", "__pycache__/", "*.pyc", ".venv/", "venv/", ".mypy_cache/", ".pytest_cache/", ".ipynb_checkpoints/")
# Where keys live. ssh keys by their key-type names, not ``id_*``, which would also take
# code such as ``id_utils.py``; a key under another name is still refused by the
# secret check if the config declares it, and can be listed in workload.ignore.
KEY_FILES = (
    ".env",
    ".env.*",
    ".envrc",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".aws/",
    ".ssh/",
    ".gnupg/",
    ".docker/",
    ".netrc",
    ".pypirc",
    ".git-credentials",
    "*.tfstate",
    "*.tfstate.*",
    "*.tfvars",
    "*.tfvars.json",
)
CONFIG_FILES = (".ephemera.yaml", ".ephemera.yml", "ephemera.yaml", "ephemera.yml")
DEFAULT_IGNORE = BUILD_DEBRIS + KEY_FILES + CONFIG_FILES
LINK_FIX = "replace the link with the file itself, or leave it out with workload.ignore"
SECRET_FIX = (
    "keep secrets in the config (or the environment), not in the workload's files; "
    "remove the value from the file, or leave the file out with workload.ignore"
)


def _ignored(rel: str, is_dir: bool, patterns: list[str]) -> bool:
    name = rel.split("/")[-1]
    for pattern in patterns:
        if pattern.endswith("/") and not is_dir:
            continue
        pat = pattern.rstrip("/")
        if fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(name, pat):
            return True
    return False


def _patterns(root: Path, extra_ignore: Iterable[str]) -> list[str]:
    patterns = list(DEFAULT_IGNORE) + list(extra_ignore)
    ignore_file = root / IGNORE_FILE
    if ignore_file.is_file() and not ignore_file.is_symlink():
        patterns += [ln.strip() for ln in ignore_file.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return patterns


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _checked_link(rel: str, path: Path, root: Path) -> Path:
    """The file a symlink stands for, if it is a file inside ``root``; ConfigError otherwise."""
    target = path.resolve()
    if not _inside(target, root):
        raise ConfigError("workload.source", f"'{rel}' is a symlink that leads outside the source folder", LINK_FIX)
    if not target.is_file():
        raise ConfigError("workload.source", f"'{rel}' is a symlink to no regular file", LINK_FIX)
    return target


def source_files(root: Path, extra_ignore: Iterable[str] = (), exclude: Iterable[Path] = ()) -> list[tuple[str, Path]]:
    """(path inside ``source/``, file to read) of every file the bundle carries from
    ``root``, sorted; ``exclude`` are files never carried (the config file)."""
    root = root.resolve()
    excluded = {Path(p).resolve() for p in exclude}
    if root.is_file():
        if root in excluded:
            raise ConfigError(
                "workload.source",
                f"'{root.name}' is the config file itself",
                "point workload.source at the workload's code, not at the config",
            )
        return [(root.name, root)]
    patterns = _patterns(root, extra_ignore)
    found = []
    for folder, dirs, names in os.walk(root):
        base = Path(folder).relative_to(root).as_posix()
        base = "" if base == "." else base + "/"
        dirs[:] = sorted(d for d in dirs if not _ignored(base + d, True, patterns))
        for d in dirs:
            if (Path(folder) / d).is_symlink():
                raise ConfigError("workload.source", f"'{base + d}/' is a symlinked folder", LINK_FIX)
        for name in names:
            rel, path = base + name, Path(folder) / name
            if _ignored(rel, False, patterns):
                continue
            real = _checked_link(rel, path, root) if path.is_symlink() else path
            if real.resolve() in excluded:
                continue
            if not real.is_file():
                continue  # sockets, fifos: nothing a workload imports
            found.append((rel, real))
    return sorted(found)


class SecretCheck:
    """Refuses any text that holds one of ``secrets`` in any form the scrubber masks."""

    def __init__(self, secrets: Iterable[str]):
        known = Scrubber(secrets).secrets  # the scrubber's own choice of what counts as a secret
        self.forms = sorted({f for s in known for f in encoded_forms(s)}, key=len, reverse=True)

    def check(self, name: str, data: bytes, field: str = "workload.source") -> None:
        """ConfigError naming ``field`` and ``name`` (never the secret) if ``data`` holds a secret."""
        if not self.forms:
            return
        text = data.decode("utf-8", "surrogateescape")
        if any(form in text for form in self.forms):
            raise ConfigError(field, f"'{name}' holds a value the config declares secret", SECRET_FIX)
