"""A faithful stand-in for OpenWhisk's ``python:3.11`` runtime, to run a real action zip.

What it reproduces, from apache/openwhisk-runtime-python (``core/python311Action``,
``core/python3Action/bin/compile``, ``core/python3Action/lib/launcher.py``) and
apache/openwhisk-runtime-go (the actionloop proxy):

- **the image's Python**: a fresh venv whose site-packages hold only the packages
  ``core/python311Action/requirements.txt`` preinstalls (:data:`IMAGE_PACKAGES`), on
  CPython 3.11 (the image is ``python:3.11-bookworm``);
- **init**: the zip is extracted into ``action/<n>/src``; ``compile`` renames
  ``__main__.py`` to ``main__.py``, writes the launcher as ``exec__.py`` importing
  ``main`` from ``main__``, moves ``src`` to ``bin``, and would pip-install a
  ``requirements.txt`` found there at init time (refused here: a deployable that needs
  it is not self-contained); the action process is ``cd bin && python exec__.py``;
- **the launcher protocol**: when ``./virtualenv`` exists it must hold
  ``bin/activate_this.py``, which is run with ``exec(code, dict(__file__=path))``
  (else "Invalid virtualenv" and exit 1); then ``from main__ import main``; an
  ``{"ok": true}`` acknowledgement on fd 3 (``__OW_WAIT_FOR_ACK``); for each stdin line
  (JSON) ``value`` is the payload and every other key K becomes ``__OW_<K>`` in the
  environment; ``main(payload)``'s result, or ``{"error": str(exception)}``, is written
  to fd 3 as one JSON line;
- **parameters**: the action sees the package's bound parameters merged under each
  invocation's (``package < action < invocation``, OpenWhisk's merge order), and the
  invoker's ``action_name``, ``namespace``, ``activation_id`` and ``deadline`` (epoch ms).

The launcher below is written from that description; it is not the runtime's file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
import zipfile
from pathlib import Path

from uv import find_uv_bin

from tests.helpers import pip_venv

IMAGE_PACKAGES = (
    "beautifulsoup4==4.11.2",
    "httplib2==0.21.0",
    "kafka_python==2.0.2",
    "lxml==4.9.2",
    "python-dateutil==2.8.2",
    "requests==2.32.2",
    "scrapy==2.11.2",
    "simplejson==3.18.3",
    "virtualenv==20.19.0",
    "twisted==24.7.0",
    "netifaces==0.11.0",
    "setuptools==67.4.0",
)
EXECUTION_ENV = "openwhisk/action-python-v3.11"

LAUNCHER = '''import json, os, sys, traceback

venv = os.path.abspath("./virtualenv")
if os.path.isdir(venv):
    activate = venv + "/bin/activate_this.py"
    if not os.path.exists(activate):
        sys.stderr.write("Invalid virtualenv. Zip file does not include 'activate_this.py'.\\n")
        sys.exit(1)
    with open(activate) as f:
        exec(compile(f.read(), activate, "exec"), dict(__file__=activate))

from main__ import main as main

out = os.fdopen(3, "wb")
if os.getenv("__OW_WAIT_FOR_ACK", ""):
    out.write(b'{"ok": true}\\n')
    out.flush()
while True:
    line = sys.stdin.readline()
    if not line:
        break
    args = json.loads(line)
    payload = {}
    for key in args:
        if key == "value":
            payload = args["value"]
        else:
            os.environ["__OW_%s" % key.upper()] = args[key]
    try:
        res = main(payload)
    except Exception as ex:
        print(traceback.format_exc(), file=sys.stderr)
        res = {"error": str(ex)}
    out.write(json.dumps(res, ensure_ascii=False).encode("utf-8") + b"\\n")
    sys.stdout.flush()
    sys.stderr.flush()
    out.flush()
'''


def image_python(root: Path, python: str) -> tuple[Path, list[str]]:
    """A venv at ``root`` holding the image's packages: (its python, packages that did not install here)."""
    pip_venv(root, python)  # with pip, as the image has it
    # the image's packages, installed by uv: the image's contents matter here, not how they got there
    pip = [find_uv_bin(), "pip", "install", "-q", "--python", str(root / "bin" / "python")]
    if subprocess.run([*pip, *IMAGE_PACKAGES], capture_output=True).returncode == 0:
        return root / "bin" / "python", []
    missing = [p for p in IMAGE_PACKAGES if subprocess.run([*pip, p], capture_output=True).returncode != 0]
    return root / "bin" / "python", missing


class Activation(dict):
    """An activation's result (the dict written to fd 3)."""


class OpenWhiskContainer:
    """One warm action container: init once from the zip, then any number of runs."""

    def __init__(
        self,
        python: Path,
        zip_path: Path,
        work: Path,
        *,
        namespace: str = "guest",
        package: str = "ephemera",
        action: str,
        bound: dict,
        timeout_ms: int = 300_000,
        env: dict | None = None,
    ):
        self.bound = bound  # the package's bound parameters
        self.action_name = f"/{namespace}/{package}/{action}"
        self.namespace = namespace
        self.timeout_ms = timeout_ms
        src = work / "action" / "1" / "src"
        src.mkdir(parents=True)
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(src)
        if (src / "requirements.txt").exists():
            raise AssertionError("the zip holds requirements.txt: the runtime would pip-install it at init")
        os.rename(src / "__main__.py", src / "main__.py")
        (src / "exec__.py").write_text(LAUNCHER)
        self.bin = work / "action" / "1" / "bin"
        shutil.move(str(src), str(self.bin))
        read_fd, self._write_fd = os.pipe()
        base = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(work),
            "LANG": "C.UTF-8",
            "PYTHONIOENCODING": "UTF-8",
            "PYTHONNOUSERSITE": "1",
            "__OW_WAIT_FOR_ACK": "1",
            "__OW_EXECUTION_ENV": EXECUTION_ENV,
            "__OW_API_HOST": "https://127.0.0.1:1",
        }
        self.stderr_path = work / "stderr.log"
        self._stderr = open(self.stderr_path, "wb")
        # as bin/exec does: cd to the action's folder, exec python exec__.py (with the result pipe as fd 3)
        script = f'exec 3>&{self._write_fd} {self._write_fd}>&-; cd "$1" && exec "$2" exec__.py'
        self.proc = subprocess.Popen(
            ["/bin/bash", "-c", script, "exec", str(self.bin), str(python)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env={**base, **(env or {})},
            pass_fds=(self._write_fd,),
        )
        os.close(self._write_fd)
        self._out = os.fdopen(read_fd, "rb")
        ack = self._out.readline()
        if json.loads(ack or b"null") != {"ok": True}:
            raise AssertionError(f"init failed: {self.stderr()}")

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def run(self, params: dict) -> Activation:
        """One invocation: the bound parameters merged under ``params``."""
        message = {
            "value": {**self.bound, **params},
            "action_name": self.action_name,
            "namespace": self.namespace,
            "activation_id": uuid.uuid4().hex,
            "transaction_id": uuid.uuid4().hex,
            "deadline": str(int(time.time() * 1000) + self.timeout_ms),
        }
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()
        line = self._out.readline()
        if not line:
            raise AssertionError(f"the action process died: {self.stderr()}")
        return Activation(json.loads(line))

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self._out.close()
        self._stderr.close()
