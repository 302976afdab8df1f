"""A VM's bootstrap, first stage: from a bare machine to Ephemera installed from the run's bundle.

Standard library only: a cloud VM runs it before anything is installed (from ``user_data``, with the system ``python3``,
at every boot until the run ends); local VMs run it too (:mod:`ephemera.vm.local_stack`). From the VM's *boot document*
(:class:`ephemera.model.vmboot.BootDocument`): 1. read the one-time credentials object (VMs without identity) into a 0600
file and delete it; 2. run the stack's setup script once; 3. fetch the bundle (presigned URL, or the VM's identity), check
its SHA-256, unpack it, install it into a virtual environment: on a cloud VM the bundle's lock and Ephemera's wheel,
hashes required, nothing resolved, with uv (else pip), from the bundle's wheelhouse, never an index -- over a prepared image's
environment only what it lacks (:func:`image_env`); a local VM's install step is :mod:`ephemera.vm.localinstall`; a wheelhouse's
SHA-256 is checked before it is unpacked, each wheel's against the lock. 4. hand over to stage two (``python -m
ephemera.vm boot``). Phases are stamped in ``<root>/state.json`` (a reboot resumes); a failure writes the failure marker.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import traceback
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # this file ships alone (stdlib only): the documented shape is for the type checker
    from ephemera.model.vmboot import BootDocument, ObjectRef

STATE, LOG, LOG_TAIL_LINES, HTTP_TIMEOUT = "state.json", "bootstrap.log", 40, 60
CREDENTIALS = "credentials.json"  # the one-time storage keys of a VM without identity


class BootError(Exception):
    """A bootstrap step failed: what, and the fix where one is known."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# -- the VM's record of what is done ------------------------------------------------------
class State:
    """``<root>/state.json``: phases stamped, steps done, reboots made."""

    def __init__(self, root: Path):
        self.path = root / STATE
        try:
            self.data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {"phases": {}, "reboots": 0}

    def phase(self, name: str, **extra) -> None:
        self.data["phases"].setdefault(name, now_iso())
        self.data.update(extra)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)


def log(root: Path, message: str) -> None:
    line = f"{now_iso()} bootstrap: {message}"
    print(line, flush=True)
    with open(root / LOG, "a") as fh:
        fh.write(line + "\n")


def log_tail(root: Path, n: int = LOG_TAIL_LINES) -> str:
    return "\n".join((root / LOG).read_text(errors="replace").splitlines()[-n:]) if (root / LOG).is_file() else ""


def run(root: Path, cmd: list[str], what: str, env: dict | None = None) -> None:
    """Run a command, its output into the bootstrap log; BootError with the fix on failure."""
    log(root, f"{what}: {' '.join(cmd)}")
    with open(root / LOG, "ab") as fh:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                              env={**os.environ, **(env or {})})
    if done.returncode != 0:
        raise BootError(f"{what} failed (exit {done.returncode}); see the log tail")


# -- getting objects: presigned URLs, file URLs, or the VM's identity -----------------------
def http(method: str, url: str, data: bytes | None = None, headers: dict | None = None, timeout: float = HTTP_TIMEOUT) -> bytes:
    if url.startswith("file://"):  # the localhost storage's presigned URLs: VMs on this machine
        path = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
        if method == "GET":
            return path.read_bytes()
        if method == "DELETE":
            path.unlink(missing_ok=True)
            return b""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data or b"")
        os.replace(tmp, path)
        return b""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def vpc_instance_identity_token(metadata_url: str, version: str, expires_in: int = 300, timeout: float = HTTP_TIMEOUT) -> str:
    """An instance identity token from IBM VPC's metadata service: PUT /identity/v1/token."""
    headers = {"Metadata-Flavor": "ibm", "Content-Type": "application/json", "Accept": "application/json"}
    url, body = f"{metadata_url.rstrip('/')}/identity/v1/token?version={version}", json.dumps({"expires_in": expires_in})
    return json.loads(http("PUT", url, body.encode(), headers, timeout))["access_token"]


def vpc_trusted_profile_token(identity: dict) -> str:
    """``vpc-trusted-profile``: an IAM token of the VM's trusted profile: an instance identity token, then POST /identity/v1/iam_tokens."""
    base, version = identity["metadata_url"].rstrip("/"), identity["metadata_version"]
    instance_token = vpc_instance_identity_token(base, version)
    headers = {"Authorization": f"Bearer {instance_token}", "Content-Type": "application/json", "Accept": "application/json"}
    body = json.dumps({"trusted_profile": {"id": identity["profile_id"]}}).encode()
    return json.loads(http("POST", f"{base}/identity/v1/iam_tokens?version={version}", body, headers))["access_token"]


# VM identity kinds: the ``kind`` a storage spec's VMAccess.identity names -> how a VM gets a
# bearer token as itself. This file ships alone, so each kind's few stdlib lines live here.
IDENTITY_KINDS = {"vpc-trusted-profile": vpc_trusted_profile_token}


def identity_token(identity: dict) -> str:
    """A bearer token of the VM's own identity, by the identity's ``kind``."""
    getter = IDENTITY_KINDS.get(identity.get("kind", ""))
    if getter is None:
        raise BootError(f"identity kind '{identity.get('kind')}' is not one this bootstrap knows "
                        f"({', '.join(IDENTITY_KINDS)}); the controller and the VM run different Ephemera versions?")
    return getter(identity)


def object_call(boot: BootDocument, method: str, ref: ObjectRef, data: bytes | None = None) -> bytes:
    """GET or PUT the object ``ref`` ({bucket, key, url}) by its URL, else as the VM itself."""
    presigned = ref.get("url")
    if presigned:
        return http(method, presigned, data)
    identity = boot.get("identity")
    if not identity:
        raise BootError(f"no URL for '{ref['key']}' and no identity to fetch it with")
    url = f"{identity['endpoint'].rstrip('/')}/{ref.get('bucket') or boot['state_bucket']}/{urllib.parse.quote(ref['key'])}"
    return http(method, url, data, {"Authorization": f"Bearer {identity_token(identity)}"})


# -- the VM's storage credentials ---------------------------------------------------------------
def write_secret(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by this user alone (0600 from creation, never through a symlink)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def fetch_credentials(root: Path, boot: BootDocument) -> Path | None:
    """Read the one-time credentials object into ``<root>/credentials.json``, delete it; the file, or None."""
    creds = boot.get("credentials")
    path = root / CREDENTIALS
    if not creds or path.exists():
        return path if path.exists() else None
    try:
        data = http("GET", creds["url"])
    except Exception as exc:  # noqa: BLE001 - the URL's lifetime is short on purpose: say so
        raise BootError(f"could not read the VM's credentials object ({type(exc).__name__}); its URL lives "
                        f"{creds.get('expires_in', 'a few')} s from apply: a VM that boots later cannot get storage access") from None
    keys = json.loads(data)
    if not isinstance(keys, dict):
        raise BootError("the VM's credentials object is not a JSON object")
    write_secret(path, json.dumps(keys).encode())
    http("DELETE", creds["delete_url"])  # read once: nobody reads it again
    log(root, "credentials read and their object deleted")
    return path


# -- the bundle -------------------------------------------------------------------------------
def verified(root: Path, boot: BootDocument, ref, sha256: str, what: str) -> bytes:
    """The object ``ref``, fetched; BootError unless its SHA-256 is ``sha256``."""
    log(root, f"fetching {what} {sha256[:12]} ({ref.get('size')} bytes)")
    data = object_call(boot, "GET", ref)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise BootError(f"{what} {ref['key']} has SHA-256 {hashlib.sha256(data).hexdigest()}, not {sha256}: refusing it")
    return data


def fetch_bundle(root: Path, boot: BootDocument) -> Path:
    """Download, verify and unpack the bundle; the folder it is in."""
    ref = boot["bundle"]
    target = root / "bundle" / ref["sha256"]
    if (target / "manifest.json").is_file():
        return target
    data = verified(root, boot, ref, ref["sha256"], "bundle")
    archive = root / "bundle.tar.gz"
    archive.write_bytes(data)
    tmp = target.with_name(target.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.name.startswith("/") or ".." in Path(member.name).parts or not (member.isfile() or member.isdir()):
                raise BootError(f"bundle member '{member.name}' is not a plain relative file")
        tar.extractall(tmp)
    os.replace(tmp, target)
    archive.unlink()
    return target


def find_uv(boot: BootDocument) -> str | None:
    return next((c for c in (boot.get("uv"), shutil.which("uv"), str(Path(sys.executable).parent / "uv")) if c and os.access(c, os.X_OK)), None)


def env_python(env: Path) -> Path:
    return env / "bin" / "python"


def install(root: Path, boot: BootDocument, bundle: Path, installer: str | None = None) -> Path:
    """Create ``<root>/env``, install the bundle into it (:func:`install_locked`, or a local VM's
    :func:`ephemera.vm.localinstall.install_local`); its python."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    env = root / "env"
    env.unlink() if env.is_symlink() else shutil.rmtree(env, ignore_errors=True)
    if boot.get("inherit_site"):  # a local VM, which runs this file from the installed package
        from ephemera.vm.localinstall import install_local  # never reached on a cloud VM, where this file ships alone
        install_local(root, boot, bundle, manifest, env)
    else:
        install_locked(root, boot, bundle, manifest, env, installer)
    if manifest.get("source"):
        (purelib(root, env) / "ephemera-workload.pth").write_text(str(bundle / manifest["source"]) + "\n")
    return env_python(env)


def locked_requirements(root: Path, bundle: Path, manifest: dict) -> list[str]:
    """The bundle's lock and Ephemera's wheel pinned by the manifest's SHA-256; BootError without a lock."""
    if not manifest.get("lock") or not manifest.get("wheel_sha256"):
        raise BootError("the bundle carries no hashed lock, and a cloud VM installs only locked packages; "
                        "pack and publish it again with this version of Ephemera")
    wheel = bundle / "wheels" / manifest["wheel"]
    pinned = root / "ephemera-wheel.txt"
    pinned.write_text(f"ephemera @ {wheel.resolve().as_uri()} --hash=sha256:{manifest['wheel_sha256']}\n")
    return [str(bundle / manifest["lock"]), str(pinned)]


def install_locked(root: Path, boot: BootDocument, bundle: Path, manifest: dict, env: Path, installer: str | None = None) -> None:
    """Install exactly the lock and Ephemera's wheel, hashes required, nothing resolved (``--no-deps``);
    over a prepared image's environment (:func:`image_env`) only what it lacks."""
    files = [arg for path in locked_requirements(root, bundle, manifest) for arg in ("-r", path)]
    files += ["--find-links", str(bundle / "wheels")]  # the wheels built from source-only packages
    python = boot.get("python") or sys.executable
    uv = None if installer == "pip" else find_uv(boot)
    uv_env = {"UV_PYTHON_DOWNLOADS": "never", "UV_LINK_MODE": "copy"}
    if boot.get("image") and (base := image_env(root, boot, bundle / manifest["lock"], uv)) is not None:
        env.symlink_to(base, target_is_directory=True)  # the image's environment is this VM's own copy of it
        python = str(env_python(env))
        try:  # everything the lock pins is there: only Ephemera's wheel is new, and no wheelhouse is fetched
            return run(root, [uv, "pip", "install", "--python", python, "--require-hashes", "--no-deps", "--no-index", *files], "installing what the image lacks (uv, hashes required, no index)", uv_env)  # type: ignore[list-item]  # image_env needs uv
        except BootError:
            log(root, "the image lacks lines of the lock: installing them from the wheelhouse")
    if house := manifest.get("vm_wheelhouse"):
        if (have := subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True).stdout.strip()) not in house["pythons"]:
            raise BootError(f"this VM's Python {have} is not one the bundle's wheelhouse has wheels for ({', '.join(house['pythons'])}): boot an image with one")
        files += ["--no-index", "--find-links", str(fetch_wheelhouse(root, boot, bundle, house))]
    else:
        log(root, "the bundle was packed without a wheelhouse: installing its lock from the package index")
    if uv:
        if not env.is_symlink():
            run(root, [uv, "venv", "--quiet", "--python", python, str(env)], "creating the environment (uv)", uv_env)
        run(root, [uv, "pip", "install", "--python", str(env_python(env)), "--require-hashes", "--no-deps", *files],
            "installing the bundle's lock (uv, hashes required)", uv_env)
    else:
        run(root, [python, "-m", "venv", str(env)], "creating the environment")
        run(root, [str(env_python(env)), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                   "--require-hashes", "--no-deps", *files], "installing the bundle's lock (pip, hashes required)")


def image_env(root: Path, boot: BootDocument, lock: Path, uv: str | None) -> Path | None:
    """The prepared image's environment (``image.env``) if the builder's marker beside it (written once all
    the lock installed) and the document both name this lock's SHA-256 and its python runs; else None, with a warning."""
    image: dict = dict(boot.get("image") or {})  # untyped here: every field is checked below
    try:
        env, want = Path(str(image["env"])), hashlib.sha256(lock.read_bytes()).hexdigest()
        if image["lock_sha256"] != want:
            raise BootError(f"it was built from lock {str(image['lock_sha256'])[:12]}, this bundle's is {want[:12]}")
        if (env.parent / "lock.sha256").read_text().strip() != want:
            raise BootError(f"{env.parent / 'lock.sha256'} names another lock (a build that did not finish, or another image)")
        if not uv or subprocess.run([str(env_python(env)), "-c", ""], stdin=subprocess.DEVNULL, capture_output=True).returncode:
            raise BootError(f"{env_python(env)} does not run" if uv else "no uv on this VM (the image environment has no pip)")
        return env
    except (BootError, KeyError, TypeError, OSError) as exc:
        log(root, f"WARNING: prepared image {image.get('id', '?')} not used ({exc}); installing the stock way")
        return None


def fetch_wheelhouse(root: Path, boot: BootDocument, bundle: Path, house: dict) -> Path:
    """Get the bundle's wheelhouse (a tar of wheels), check its SHA-256 against the manifest's entry
    ``house`` before unpacking, each member is a plain wheel file, each wheel's SHA-256 one its lock pins; its folder."""
    ref = boot["bundle"].get("wheelhouse") or {"key": "(none in the boot document)"}
    data = verified(root, boot, ref, house["sha256"], "wheelhouse")  # the manifest's hash, not the document's
    pinned = set(re.findall(r"--hash=sha256:([0-9a-f]{64})", (bundle / house["lock"]).read_text()))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:  # every member checked before anything is written
        for m in tar.getmembers():
            if not (m.isfile() and m.name == Path(m.name).name and m.name.endswith(".whl")) or m.name[0] == ".":
                raise BootError(f"wheelhouse member '{m.name}' is not a plain wheel file: refusing the wheelhouse")
        wheels = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]  # regular files
    for name, wheel in wheels.items():
        if (digest := hashlib.sha256(wheel).hexdigest()) not in pinned:
            raise BootError(f"wheelhouse member {name} has SHA-256 {digest}, which {house['lock']} does not pin: refusing it")
    shutil.rmtree(folder := root / "wheelhouse", ignore_errors=True)
    folder.mkdir(parents=True)
    for name, wheel in wheels.items():  # only now, every member and hash checked
        (folder / name).write_bytes(wheel)
    return folder


def purelib(root: Path, env: Path) -> Path:
    done = subprocess.run([str(env_python(env)), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True)
    if done.returncode != 0:
        raise BootError(f"the environment's python does not run: {done.stderr.strip()[-300:]}")
    path = Path(done.stdout.strip())
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- the failure marker -----------------------------------------------------------------------
def failure_marker(boot: BootDocument, state: State, root: Path, error_type: str, message: str, tb: str = "") -> dict:
    """The run's failure marker, in the shape of :mod:`ephemera.model.marker` (plus ``boot``)."""
    now = now_iso()
    return {"run_id": boot["run_id"], "entry": boot.get("entry", ""), "status": "failed", "started_at": now, "finished_at": now,
            "duration_s": 0.0, "outputs": [], "error": {"type": error_type, "message": message, "traceback": tb}, "log_tail": log_tail(root),
            "boot": {"worker": boot["worker"], "phases": state.data["phases"], "reboots": state.data.get("reboots", 0)}}


def write_failure(boot: BootDocument, state: State, root: Path, exc: BaseException) -> None:
    message = f"worker {boot['worker']}: bootstrap failed: {exc}"
    log(root, message)
    marker = failure_marker(boot, state, root, "BootstrapError", message, traceback.format_exc())
    try:
        object_call(boot, "PUT", boot["marker"], json.dumps(marker, indent=1).encode())
    except Exception as put_exc:  # noqa: BLE001 - nothing else can be done from here: the reaper's boot timeout ends the run
        log(root, f"could not write the failure marker: {type(put_exc).__name__}: {put_exc}")


# -- the program ------------------------------------------------------------------------------
def bootstrap(boot_file: Path, root: Path) -> Path:
    """Stage one; returns the environment's python (stage two runs there)."""
    boot: BootDocument = json.loads(boot_file.read_text())
    root.mkdir(parents=True, exist_ok=True)
    state = State(root)
    state.phase("booted")
    try:
        if fetch_credentials(root, boot):  # first: their URL lives minutes, and nothing installed yet can see them
            state.phase("credentials_fetched")
        if (setup := boot.get("setup")) and not state.data.get("setup_done"):
            run(root, ["/bin/bash", setup], "setting the machine up")
            state.phase("setup_done", setup_done=True)
        bundle = fetch_bundle(root, boot)
        if state.data.get("installed") != boot["bundle"]["sha256"] or not env_python(root / "env").exists():
            started = time.monotonic()
            install(root, boot, bundle)
            if boot.get("image"):  # whether the VM started from it (cloud: a link to it; local: a .pth), or installed the stock way
                state.phase("image_used" if (root / "env").is_symlink() or any((root / "env").glob("lib/*/site-packages/zy-ephemera-image.pth")) else "image_rejected")
            log(root, f"bundle installed in {time.monotonic() - started:.1f}s")
            state.data["installed"] = boot["bundle"]["sha256"]
        state.phase("bundle_installed")
    except Exception as exc:  # noqa: BLE001 - every failure ends the run with a marker
        write_failure(boot, state, root, exc)
        raise SystemExit(1) from None
    return env_python(root / "env")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bootstrap", description="Boot a run's VM from its boot document.")
    parser.add_argument("--boot", required=True, help="the VM's boot document (JSON)")
    parser.add_argument("--root", help="where the VM's environment and state live (default: the document's, or /opt/ephemera)")
    parser.add_argument("--pid-file", help="written at start (the VM's process, from bootstrap to agent)")
    args = parser.parse_args(argv)
    if args.pid_file:
        Path(args.pid_file).parent.mkdir(parents=True, exist_ok=True)
        Path(args.pid_file).write_text(str(os.getpid()))
    boot_file = Path(args.boot).resolve()
    root = Path(args.root or json.loads(boot_file.read_text()).get("root") or "/opt/ephemera")
    python = bootstrap(boot_file, root)
    # stage two in the bundle's environment; the same process, so the pid file still names the VM
    stage2 = [str(python), "-m", "ephemera.vm", "boot", "--boot", str(boot_file), "--root", str(root)]
    if args.pid_file:
        stage2 += ["--pid-file", args.pid_file]
    sys.stdout.flush()
    os.execv(stage2[0], stage2)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
