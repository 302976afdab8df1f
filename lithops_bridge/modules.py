"""Which modules travel with a job's function: Lithops' ``include_modules`` and ``exclude_modules``.

A worker (a pool process here, or a VM's) imports the function's module by name when
it loads the function, so a module of the caller's own (a file next to the script,
a package of the project) must travel with the job where the worker cannot import
it. As in Lithops 3.x (``lithops/job/serialize.py``, ``lithops/job/job.py``):

- ``include_modules=[]`` (the default): the modules the function references (its
  own module, modules and objects in its globals and closure, ``import`` statements
  in its code, and recursively what those modules reference) travel, except the
  ones installed where the worker runs (the standard library, ``site-packages``,
  and Ephemera and the bridge, which every VM has) and those named in
  ``exclude_modules`` (with their submodules);
- ``include_modules=[names]``: exactly those travel: a name's top-level package
  (every ``.py`` file in it) or module file, or a ``.py`` path; ``exclude_modules``
  is not used;
- ``include_modules=None``: nothing travels.

The config keys ``lithops.include_modules`` (a list, or ``"none"``) and
``lithops.exclude_modules`` combine with the arguments as in Lithops. What travels
is a dict ``{relative path: source bytes}``; :func:`install` writes it once per
process into a folder appended to ``sys.path`` (so an installed module of the same
name still wins), keyed by the content's hash.
"""

from __future__ import annotations

import dis
import functools
import hashlib
import importlib.util
import inspect
import os
import sys
import sysconfig
import tempfile
import types
from pathlib import Path
from typing import Any, Iterable

from lithops_bridge.errors import ConfigError

ALWAYS_INSTALLED = ("ephemera", "lithops_bridge", "lithops", "cloudpickle")  # on every worker, never shipped
_INSTALLED_ROOTS = tuple(
    sorted(
        {
            str(Path(p).resolve())
            for key in ("stdlib", "platstdlib", "purelib", "platlib")
            if (p := sysconfig.get_paths().get(key))
        }
    )
)
_SOURCES: dict[tuple[str, int, int], bytes] = {}  # (path, mtime_ns, size) -> file bytes, read once
_INSTALLED: set[str] = set()  # content hashes already written and on sys.path (this process)


def resolve(config_lithops: dict, include_modules: Any, exclude_modules: Any) -> tuple[list[str] | None, set[str]]:
    """``(include, exclude)`` from the config's ``lithops`` section and a job's arguments;
    include ``[]`` means "detect", ``None`` "nothing"."""
    cfg_include = config_lithops.get("include_modules", [])
    if isinstance(cfg_include, str):
        if cfg_include.lower() != "none":
            raise ConfigError(
                "lithops.include_modules",
                f"expected a list of module names or 'none', got {cfg_include!r}",
                "e.g. include_modules: [mypackage]",
            )
        cfg_include = None
    exclude = set(config_lithops.get("exclude_modules") or []) | set(exclude_modules or [])
    if include_modules is None or (cfg_include is None and not include_modules):
        return None, exclude
    return sorted(set(cfg_include or []) | set(include_modules)), exclude


def _file_of(module: types.ModuleType) -> str | None:
    path = getattr(module, "__file__", None)
    return _resolved(path) if path else None


@functools.lru_cache(maxsize=4096)
def _resolved(path: str) -> str:
    """A module file's real path: resolved once per process (every map would otherwise
    walk the links of each module it looks at)."""
    return str(Path(path).resolve())


def _installed(name: str, path: str | None) -> bool:
    if name.split(".")[0] in ALWAYS_INSTALLED or path is None or not path.endswith(".py"):
        return True  # built-in, extension or namespace-only: cannot travel as source
    parts = Path(path).parts
    return path.startswith(_INSTALLED_ROOTS) or "site-packages" in parts or "dist-packages" in parts


def _excluded(name: str, exclude: set[str]) -> bool:
    return any(name == e or name.startswith(e + ".") for e in exclude)


def _code_imports(code: types.CodeType) -> Iterable[str]:
    """Module names of ``import`` statements in ``code`` and its nested code objects."""
    todo = [code]
    while todo:
        block = todo.pop()
        for ins in dis.get_instructions(block):
            if ins.opname == "IMPORT_NAME" and isinstance(ins.argval, str):
                yield ins.argval
        todo.extend(c for c in block.co_consts if isinstance(c, types.CodeType))


def _referenced(obj: Any) -> set[str]:
    """Module names a function (or callable object) refers to, first level."""
    names: set[str] = set()
    fn = getattr(obj, "__func__", obj)
    if not inspect.isfunction(fn):
        fn = getattr(type(obj), "__call__", None) if not isinstance(obj, type) else None
        if not inspect.isfunction(fn):
            return {getattr(obj, "__module__", None) or ""} - {""}
    names.add(fn.__module__ or "")
    try:
        cvs = inspect.getclosurevars(fn)
        values = list(cvs.nonlocals.values()) + list(cvs.globals.values())
    except (TypeError, ValueError):
        values = []
    for value in values:
        if isinstance(value, types.ModuleType):
            names.add(value.__name__)
        elif getattr(value, "__module__", None):
            names.add(value.__module__)
    names.update(_code_imports(fn.__code__))
    return names - {"", "__main__", "builtins"}


def _located(name: str) -> str | None:
    """The file of a module not imported here, found without importing it (nor anything
    installed: only a user package's own ``__init__`` may run to find a submodule)."""
    top = name.split(".")[0]
    try:
        spec = importlib.util.find_spec(top)  # a top-level name imports nothing
        if spec is None or not spec.origin or _installed(top, str(Path(spec.origin).resolve())):
            return None
        spec = spec if top == name else importlib.util.find_spec(name)
    except (ImportError, ValueError):  # e.g. a relative import, or a module only the worker has
        return None
    return str(Path(spec.origin).resolve()) if spec is not None and spec.origin else None


def _detect(func: Any, exclude: set[str]) -> dict[str, str]:
    """``{module name: file}`` of the user modules the function depends on, recursively
    through the globals of those already imported (one the function imports only when it
    runs travels as its file, without being imported here)."""
    found: dict[str, str] = {}
    todo = list(_referenced(func))
    while todo:
        name = todo.pop()
        if name in found or _excluded(name, exclude):
            continue
        module = sys.modules.get(name)
        path = _file_of(module) if module is not None else _located(name)
        if path is None or _installed(name, path):
            continue
        found[name] = path
        parent = name.rpartition(".")[0]
        if parent:
            todo.append(parent)  # the package's __init__ runs first on the worker
        for value in list(vars(module).values()) if module is not None else ():
            if isinstance(value, types.ModuleType):
                todo.append(value.__name__)
            elif inspect.isfunction(value) or inspect.isclass(value):
                todo.append(getattr(value, "__module__", "") or "")
    return found


def _relative(name: str, path: str) -> str:
    """The module's path relative to the sys.path entry it is imported from."""
    depth = name.count(".") + (1 if path.endswith("__init__.py") else 0)
    return Path(path).relative_to(Path(path).parents[depth]).as_posix()


def _read(path: str) -> bytes:
    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size)
    if key not in _SOURCES:
        _SOURCES[key] = Path(path).read_bytes()
    return _SOURCES[key]


def _named(names: list[str]) -> dict[str, bytes]:
    """Files of explicitly included modules: ``.py`` paths, or the top-level package of a name."""
    out: dict[str, bytes] = {}
    for name in names:
        if name.endswith(".py"):
            path = Path(name).resolve()
            if path.is_file():
                out[path.name] = _read(str(path))
            continue
        root = name.split(".")[0]
        if root in ALWAYS_INSTALLED:
            continue
        try:
            spec = importlib.util.find_spec(root)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin or _installed(root, str(Path(spec.origin).resolve())):
            continue
        origin = Path(spec.origin).resolve()
        if origin.name == "__init__.py":
            base = origin.parent.parent
            for file in sorted(origin.parent.rglob("*.py")):
                if "__pycache__" not in file.parts:
                    out[file.relative_to(base).as_posix()] = _read(str(file))
        else:
            out[origin.name] = _read(str(origin))
    return out


def module_data(func: Any, include: list[str] | None, exclude: set[str]) -> dict[str, bytes]:
    """``{relative path: source}`` of the modules that travel with ``func``."""
    if include is None:
        return {}
    if include:
        return _named(include)
    return {_relative(name, path): _read(path) for name, path in _detect(func, exclude).items()}


def digest(modules: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for rel in sorted(modules):
        h.update(rel.encode() + b"\0" + hashlib.sha256(modules[rel]).digest())
    return h.hexdigest()[:24]


def install(modules: dict[str, bytes] | None) -> None:
    """Make shipped modules importable in this process (once per content)."""
    if not modules:
        return
    key = digest(modules)
    if key in _INSTALLED:
        return
    base = Path(tempfile.gettempdir()) / "lithops-bridge-modules"
    folder = base / key
    if not folder.is_dir():
        staging = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=_mkdir(base)))
        for rel, data in modules.items():
            target = (staging / rel).resolve()
            if staging.resolve() not in target.parents:
                raise ValueError(f"shipped module path {rel!r} leaves its folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        try:
            os.rename(staging, folder)  # atomic: concurrent workers of one machine race here
        except OSError:
            import shutil

            shutil.rmtree(staging, ignore_errors=True)  # another worker won; its copy is the same content
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
    importlib.invalidate_caches()
    _INSTALLED.add(key)


def _mkdir(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    return str(path)
