"""A local VM's install step: the bundle over the controller's site-packages, or over a prepared image.

Local VMs run the bootstrap (:mod:`ephemera.vm.bootstrap`) from the installed package, so
their install step lives here, beside it, and the bootstrap -- one stdlib-only file copied
whole into every cloud VM's user data -- carries only what a cloud VM runs. The
bootstrap's helpers are reached through its module (``bootstrap.run``), as its own
functions reach them.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ephemera.vm import bootstrap

if TYPE_CHECKING:
    from ephemera.model.vmboot import BootDocument

HOST_PTH = "zz-ephemera-host.pth"  # the controller's site-packages, seen by the VM's environment


def install_local(root: Path, boot: BootDocument, bundle: Path, manifest: dict, env: Path) -> None:
    """A local VM: the controller's site-packages seen through a ``.pth``, Ephemera's wheel over
    them and the bundle's wheelhouse (what the controller lacks), offline, hashes required;
    over a prepared image (:mod:`ephemera.vm.imageboot`) when the boot document names one
    that checks out."""
    if boot.get("image"):
        from ephemera.vm import imageboot  # imports this module's caller: only once it is loaded

        if (site := imageboot.image_site(root, boot)) is not None:
            return imageboot.install_over_image(root, boot, bundle, manifest, env, site)
    run, env_python = bootstrap.run, bootstrap.env_python
    wheel = str(bundle / "wheels" / manifest["wheel"])
    extras = sorted(set(boot.get("extras") or []) | ({"gpu"} if int((boot.get("gpu") or {}).get("count") or 0) else set()))
    target = f"{wheel}[{','.join(extras)}]" if extras else wheel
    python = boot.get("python") or sys.executable
    if _has_pip(python):  # pip drives the VM's environment from outside: nothing to install into it first
        pip = [python, "-m", "pip", "--python", str(env_python(env))]
        run(root, [python, "-m", "venv", "--without-pip", str(env)], "creating the environment")
    else:  # a controller installed with uv has no pip: the environment gets its own
        pip = [str(env_python(env)), "-m", "pip"]
        if not _uv_env_with_pip(root, boot, python, env):
            run(root, [python, "-m", "venv", str(env)], "creating the environment (with pip: the controller has none)")
    # pip, not uv: uv ignores packages a .pth makes visible, and the controller's come in through one
    pip += ["install", "--disable-pip-version-check", "--no-input"] + (["--no-index"] if boot.get("offline") else [])
    site = bootstrap.purelib(root, env)
    (site / HOST_PTH).write_text("".join(p + "\n" for p in boot.get("inherit_site") or []))
    install_own_wheel(root, boot, pip, env, wheel)
    if house_entry := manifest.get("local_wheelhouse"):
        house = ["--no-index", "--find-links", str(bootstrap.fetch_wheelhouse(root, boot, bundle, house_entry))]
        run(
            root,
            pip + house + ["--require-hashes", "--no-deps", "-r", str(bundle / house_entry["lock"])],
            "installing the wheelhouse (pip, offline, hashes required)",
        )
        pip += house[1:]
    run(root, pip + [target, "-r", str(bundle / "requirements.txt")], "installing the bundle's requirements (pip)")


def install_own_wheel(root: Path, boot: BootDocument, pip: list[str], env: Path, wheel: str) -> None:
    """Ephemera's wheel alone (``--no-deps``, no index) into the environment, over the copy the
    controller's site-packages show: with uv when there is one (a tenth of pip's time for one
    wheel on a busy machine), else with ``pip``. The bundle's step after it finds it installed."""
    if uv := bootstrap.find_uv(boot):
        cmd = [uv, "pip", "install", "--quiet", "--python", str(bootstrap.env_python(env)), "--no-config", "--no-index"]
        cmd += ["--no-deps", "--reinstall", "--compile-bytecode", wheel]
        bootstrap.run(root, cmd, "installing Ephemera's wheel (uv)", {"UV_LINK_MODE": "copy"})
    else:
        bootstrap.run(root, pip + ["--ignore-installed", "--no-deps", wheel], "installing Ephemera's wheel (pip)")


def _has_pip(python: str) -> bool:
    if python == sys.executable:  # the usual case: this interpreter, no process to start
        return importlib.util.find_spec("pip") is not None
    return subprocess.run([python, "-c", "import pip"], stdin=subprocess.DEVNULL, capture_output=True).returncode == 0


def _uv_env_with_pip(root: Path, boot: BootDocument, python: str, env: Path) -> bool:
    """Make the environment with uv and put pip in it (from uv's cache, or the index unless the
    VM is offline): about a second, where ensurepip byte-compiles pip (15-30 s on a busy
    machine, every local VM). False, with nothing left behind, when uv cannot: ensurepip then."""
    uv = bootstrap.find_uv(boot)
    if not uv:
        return False
    uv_env = {"UV_PYTHON_DOWNLOADS": "never", "UV_LINK_MODE": "copy"}
    offline = ["--offline"] if boot.get("offline") else []
    try:
        bootstrap.run(root, [uv, "venv", "--quiet", "--python", python, str(env)], "creating the environment (uv)", uv_env)
        put = [uv, "pip", "install", "--quiet", *offline, "--python", str(bootstrap.env_python(env)), "pip"]
        bootstrap.run(root, put, "putting pip in it (uv)", uv_env)
        return True
    except bootstrap.BootError as exc:
        bootstrap.log(root, f"{exc}: ensurepip puts pip in the environment instead")
        shutil.rmtree(env, ignore_errors=True)
        return False
