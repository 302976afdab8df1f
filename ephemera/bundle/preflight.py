"""Fail before paying: what the controller can check of a workload before an apply creates anything.

A typo in ``workload.entry`` or ``workload.requirements`` would otherwise be found on
the VM, after a GPU VM has booted and installed its driver. The controller packs the
source, so it checks here, all problems at once (:class:`~ephemera.errors.ConfigErrors`):

- ``workload.entry``: the module is a file of ``workload.source`` (or, without it, an
  installed module) and it defines the function at its top level. The file is parsed
  (``ast``), never imported: importing would run the workload's code on the controller;
- ``workload.requirements``: each line parses as a PEP 508 requirement (``packaging``);
- local VMs install offline, from this machine's environment or from the run's
  wheelhouse (fetched here at pack time), so every requirement missing here that cannot
  be fetched is named, with the command that installs it here.
"""

from __future__ import annotations

import ast
import importlib.util
import threading
from pathlib import Path
from typing import Optional

from ephemera.bundle import wheelhouse
from ephemera.bundle.lock import needs_lock
from ephemera.bundle.pack import config_file, requirements
from ephemera.bundle.wheel import installed_distribution
from ephemera.bundle.source import source_files
from ephemera.config import Config
from ephemera.config.paths import workload_source
from ephemera.errors import ConfigError, ConfigErrors

ENTRY = "workload.entry"
# CPython before 3.11.8 (gh-106905) can fail ast.parse run in two threads at once with
# "SystemError: AST constructor recursion depth mismatch"; concurrent applies run this check
_PARSE = threading.Lock()
REQUIREMENTS = "workload.requirements"


def check_workload(config: Config, packing: bool = False) -> None:
    """Raise :class:`ConfigErrors` (or the one :class:`ConfigError`) naming every problem
    of the workload an apply of ``config`` would run; nothing for a published bundle
    (``workload.bundle``: checked when it was packed). ``packing``: the source is being
    packed now (``ephemera bundle pack``), so it is checked even where the config pins a bundle."""
    if config.workload.bundle and not packing:
        return
    installed_distribution()  # where no bundle can be packed (a deployed action), that is the one problem to name

    problems: list[ConfigError] = []
    root = workload_source(config)
    try:
        problems += entry_problems(
            config.workload.entry, root, config.workload.ignore, [p for p in [config_file(config)] if p is not None]
        )
    except ConfigError as exc:  # the source itself is refused (a link out of it)
        problems.append(exc)
    try:
        reqs = requirements(config)
    except ConfigError as exc:
        problems.append(exc)
        reqs = []
    parsed, bad = parse_requirements(reqs)
    problems += bad
    if not needs_lock(config):
        problems += offline_problems(parsed)
    if problems:
        raise ConfigErrors.of(problems)


def _module_file(module: str, root: Optional[Path], ignore, exclude) -> Optional[Path]:
    """The file of ``module`` in the workload source, or None."""
    if root is None:
        return None
    root = root.resolve()
    if root.is_file():
        return root if root.suffix == ".py" and root.stem == module else None
    files = dict(source_files(root, ignore, exclude))
    base = module.replace(".", "/")
    for name in (f"{base}.py", f"{base}/__init__.py"):
        if name in files:
            return files[name]
    return None


def _installed_file(module: str) -> tuple[bool, Optional[Path]]:
    """(whether ``module`` is importable here, its source file if it has one)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return False, None
    if spec is None:
        return False, None
    origin = Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    return True, origin


def defines(tree: ast.Module, name: str) -> bool:
    """Whether a module's top level binds ``name`` (def, class, assignment or import)."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((a.asname or a.name.split(".")[0]) == name for a in node.names):
                return True
        if isinstance(node, (ast.If, ast.Try)):  # e.g. a definition under `if TYPE_CHECKING` / `try`
            inner = ast.Module(body=[n for block in _blocks(node) for n in block], type_ignores=[])
            if defines(inner, name):
                return True
    return False


def _blocks(node: ast.stmt) -> list[list[ast.stmt]]:
    if isinstance(node, ast.If):
        return [node.body, node.orelse]
    if isinstance(node, ast.Try):
        return [node.body, node.orelse, node.finalbody, *[h.body for h in node.handlers]]
    return []


def entry_problems(entry: str, root: Optional[Path], ignore=(), exclude=()) -> list[ConfigError]:
    """What is wrong with ``module:function`` against the source folder (or the installed modules)."""
    module, _, func = entry.partition(":")
    path = _module_file(module, root, ignore, exclude)
    where = f"workload.source ({root})" if root is not None else "the installed packages"
    if path is None:
        found, path = _installed_file(module)
        if not found:
            shown = module.replace(".", "/") + ".py"
            return [
                ConfigError(
                    ENTRY,
                    f"no module '{module}' in {where}",
                    f"the entry is 'module:function' with the module a file of the source ({shown}); "
                    "fix the entry, or workload.source",
                )
            ]
        if path is None:
            return []  # a compiled or namespace module: importable, not readable here
    try:
        source = path.read_bytes()
        with _PARSE:
            tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        return [
            ConfigError(
                ENTRY,
                f"'{path.name}' does not parse: {exc.msg} at line {exc.lineno}",
                "fix the syntax error (it would fail on the VM)",
            )
        ]
    if not defines(tree, func):
        tops = sorted(n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
        known = f"it defines {', '.join(tops)}" if tops else "it defines no function"
        return [ConfigError(ENTRY, f"module '{module}' ({path.name}) has no function '{func}'", f"{known}; fix the entry")]
    return []


def parse_requirements(lines: list[str]) -> tuple[list, list[ConfigError]]:
    """(the PEP 508 requirements, a ConfigError per line that is not one)."""
    from packaging.requirements import InvalidRequirement, Requirement  # only where a bundle is packed: action packages lack it

    parsed, bad = [], []
    for line in lines:
        try:
            parsed.append(Requirement(line))
        except InvalidRequirement as exc:
            reason = str(exc).splitlines()[0]
            bad.append(
                ConfigError(
                    REQUIREMENTS,
                    f"'{line}' is not a requirement ({reason})",
                    "write PEP 508: name, optional [extras], version specifiers, e.g. 'numpy>=1.26'",
                )
            )
    return parsed, bad


def offline_problems(parsed: list) -> list[ConfigError]:
    """What local VMs cannot install: they install offline, from this machine's environment or
    from the run's wheelhouse (:mod:`ephemera.bundle.wheelhouse`, fetched here at pack time),
    so only a requirement missing here that cannot be fetched (no index, no such release, no
    wheel for this platform) is a problem, named with the command that fixes it."""
    return wheelhouse.problems(wheelhouse.unsatisfied(parsed))
