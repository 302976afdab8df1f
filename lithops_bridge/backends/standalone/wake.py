"""Wake-ups between the processes of one machine (local VMs and their client).

On localhost storage every hop of a standalone job (the VMs seeing a new job, the
client seeing a result) would otherwise wait for the next poll of a folder. Instead,
a waiting process holds a :class:`Bell`: a Unix datagram socket in a folder private
to this user (``<tmp>/ephemera-wake-<uid>``, mode 0700, owned by the user, not a
link: as ``tmux`` keeps its sockets), and whoever has news sends it one byte.

A ring carries no data: it only ends a wait early, and the woken process then reads
storage as it would have at its next poll (where every job and result is checked
against the run key). So only this user's processes can ring at all, a ring that
never comes costs only the poll it replaces, and a ring that should not have come
costs one look at storage. Names are fixed patterns (``server_bell`` /
``client_bell``); a peer only rings a name that matches one, never a path. Where the
folder cannot be trusted or made, or a socket path would be too long, there is no
bell (``open_bell`` returns None) and the caller polls as before.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import logging
import os
import re
import secrets
import select
import socket
import stat
import tempfile
import threading
import time
import weakref

log = logging.getLogger("lithops_bridge.standalone")
MAX_HINT = 200  # bytes of a ring's hint
SELF = b"!"  # what a holder's own ``set`` sends, and a ring without a hint
MAX_PATH = 100  # bytes of a socket path (sun_path holds 108 with its terminator on Linux, 104 on macOS)
_CLIENT = re.compile(r"^c-[0-9a-f]{32}$")
_SERVER = re.compile(r"^s-[0-9a-f]{24}-[0-9]{1,6}$")
_sender: socket.socket | None = None
_sender_lock = threading.Lock()
SPARE_BELLS = 4  # client bells kept for the next follower of this process (binding one creates a file)
_spare: list["Bell"] = []
_spare_lock = threading.Lock()


def _after_fork() -> None:
    global _sender, _sender_lock, _spare, _spare_lock
    _sender, _sender_lock = None, threading.Lock()  # the parent's may be mid-send
    for bell in _spare:  # the parent's: this process must not read its rings, nor remove its files
        if bell._finalizer is not None:
            bell._finalizer.detach()
        bell._sock.close()
    _spare, _spare_lock = [], threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


@functools.lru_cache(maxsize=1)
def wake_dir() -> str | None:
    """The user's private folder of bells (made if missing, checked once per process);
    None if it is not private to this user."""
    if not hasattr(socket, "AF_UNIX") or not hasattr(os, "getuid"):
        return None
    path = os.path.join(tempfile.gettempdir(), f"ephemera-wake-{os.getuid()}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        log.debug("no wake-ups: %s is not a folder private to this user", path)
        return None
    return path


def server_bell(bucket: str, run_id: str, worker: int | str) -> str:
    """The bell name of the task server of VM ``worker`` of a run (the client rings it on submit)."""
    digest = hashlib.sha256(f"{bucket}\0{run_id}".encode()).hexdigest()[:24]
    return f"s-{digest}-{int(worker)}"


def client_bell() -> str:
    """A fresh bell name for a client (travels in its jobs; the VMs ring it with each result)."""
    return f"c-{secrets.token_hex(16)}"


def is_bell_name(name: object) -> bool:
    return isinstance(name, str) and bool(_CLIENT.match(name) or _SERVER.match(name))


def _path(name: str) -> str | None:
    folder = wake_dir() if is_bell_name(name) else None
    path = None if folder is None else os.path.join(folder, name)
    return path if path is not None and len(path.encode()) <= MAX_PATH else None


def ring(name: object, hint: str = "") -> bool:
    """Wake the holder of bell ``name``, telling it ``hint`` (what to look at first; it
    checks it as anything it reads); False: no such bell, or not a bell name. Never raises."""
    path = _path(name) if isinstance(name, str) else None
    return path is not None and _send(path, hint.encode()[:MAX_HINT] or SELF)


def _send(path: str, message: bytes = SELF) -> bool:
    global _sender
    try:
        with _sender_lock:
            if _sender is None:
                _sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                _sender.setblocking(False)
            _sender.sendto(message, path)
        return True
    except OSError as exc:  # gone, or its queue is full (then it is awake anyway)
        return exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK)


class Bell:
    """A wait that :func:`ring` ends early; ``set``/``wait``/``clear`` as ``threading.Event``."""

    def __init__(self, name: str, path: str, sock: socket.socket):
        self.name = name  # what peers ring
        self._path = path
        self._sock = sock
        self._finalizer: weakref.finalize | None = None  # removes the socket file (see open_bell)

    def set(self) -> None:
        _send(self._path)

    def wait(self, timeout: float | None = None) -> bool:
        """True if rung (now or since the last ``clear``) within ``timeout`` seconds."""
        try:
            readable, _w, _x = select.select([self._sock], [], [], timeout)
        except (OSError, ValueError):  # closed: wait as a poll would
            time.sleep(timeout or 0)
            return False
        return bool(readable)

    def clear(self) -> None:
        self.take()

    def take(self) -> list[bytes]:
        """The hints of the rings since the last ``take`` or ``clear`` (at most 1,000: the rest
        stay for the next call)."""
        out: list[bytes] = []
        try:
            while len(out) < 1000:
                out.append(self._sock.recv(MAX_HINT))
        except OSError:
            pass
        return out

    def close(self) -> None:
        try:
            self._sock.close()
        finally:
            _unlink(self._path)


def open_bell(name: str) -> Bell | None:
    """Listen on bell ``name`` (a stale socket of that name, left by a killed process, is replaced)."""
    path = _path(name)
    if path is None:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        sock.bind(path)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        log.debug("no wake-ups on %s: %s", path, exc)
        return None
    bell = Bell(name, path, sock)
    bell._finalizer = weakref.finalize(bell, _unlink, path)  # also at interpreter exit, with a daemon thread still waiting
    return bell


def reuse_client_bell() -> Bell | None:
    """A client bell an ended follower of this process put back (``put_back``), or None."""
    with _spare_lock:
        return _spare.pop() if _spare else None


def put_back(bell: Bell) -> None:
    """Keep a client bell for the next follower of this process, or close it if enough are
    kept. Rings still on their way to it name jobs of the follower that ended: the next
    one reads them as hints, finds them for no job of its own, and ignores them."""
    bell.take()
    with _spare_lock:
        if len(_spare) < SPARE_BELLS and _CLIENT.match(bell.name):
            _spare.append(bell)
            return
    bell.close()


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


@functools.lru_cache(maxsize=1)
def sweep() -> int:
    """Remove the bells nobody listens on any more (left by killed clients and agents; once per process)."""
    folder, removed = wake_dir(), 0
    for name in os.listdir(folder) if folder else []:
        path = os.path.join(folder, name)  # type: ignore[arg-type]
        if not is_bell_name(name):
            continue
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
                probe.connect(path)
        except ConnectionRefusedError:
            _unlink(path)
            removed += 1
        except OSError:
            continue
    return removed
