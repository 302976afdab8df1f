"""Localhost storage's paths: whether a key's path stays in its bucket once symbolic
links are followed, and the walk of a folder that a listing makes."""

from __future__ import annotations

import os
import stat


def stays_in(root: str, segments: list[str], real_base: str) -> bool:
    """Whether ``root/<segments>`` stays in the folder ``real_base`` (a real path) once its
    symbolic links are followed. Each existing segment is looked at (``lstat``), from the
    bucket's folder down; only a link on the way needs the whole path resolved, and
    nothing below a segment that does not exist can lead anywhere."""
    here = root
    for i, segment in enumerate(segments):
        here = os.path.join(here, segment)
        try:
            mode = os.lstat(here).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return True
        except OSError:  # e.g. a folder it may not search: resolve as far as it can be
            mode = stat.S_IFLNK
        if stat.S_ISLNK(mode):
            real = os.path.realpath(os.path.join(here, *segments[i + 1 :]))
            return os.path.commonpath([real, real_base]) == real_base
    return True


def walk(folder: str, key_prefix: str, prefix: str, start_after: str, found: list[tuple[str, str]]) -> None:
    """Add ``(key, path)`` of every object under ``folder`` (whose keys start with
    ``key_prefix``) that matches ``prefix`` and sorts after ``start_after``; links to
    folders are not followed (as ``os.walk``)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:  # deleted while listing, no such folder, or unreadable: skipped, as os.walk does
        return
    for entry in entries:
        key = key_prefix + entry.name
        try:
            is_dir = entry.is_dir()
        except OSError:
            continue
        if is_dir:
            if not entry.is_symlink() and (prefix.startswith(key + "/") or key.startswith(prefix)):
                walk(entry.path, key + "/", prefix, start_after, found)
        elif key.startswith(prefix) and key > start_after:
            found.append((key, entry.path))
