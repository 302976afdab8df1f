"""terraform/aws-ec2-gpu checked against the real AWS provider's schema, as a fact table.

tests/aws/aws_provider_schema.json is ``terraform providers schema -json`` of
registry.terraform.io/hashicorp/aws 5.100.0, trimmed to the types the stack uses
(:mod:`tests.aws.schema_facts`), so this test runs where the provider is absent; where
the filesystem mirror is present, the fixture is compared with the real provider's
output and the stack is put through ``terraform validate`` with it. Facts the stack relies on:

- every resource type it uses has ``tags_all`` (the provider applies ``default_tags``)
  except aws_route, aws_route_table_association and aws_iam_role_policy, which AWS does
  not tag: so every taggable resource of a run carries the run id;
- aws_instance: ``metadata_options`` (one block: ``http_tokens`` "optional" | "required",
  ``http_put_response_hop_limit`` 1-64), ``instance_market_options`` (one block;
  ``spot_options``: ``spot_instance_type`` "one-time" | "persistent",
  ``instance_interruption_behavior`` "hibernate" | "stop" | "terminate"),
  ``instance_initiated_shutdown_behavior`` "stop" | "terminate" (EC2 API reference);
- data aws_ami_ids: ``owners`` required; the provider's ``endpoints`` block has ec2, iam,
  sts and s3 (what the tests override).

Per resource and data block the checker asserts: every argument and nested block exists,
is not computed-only and has its form (attribute or block, within max_items), required
arguments are set, literal values (``var.x`` resolved to its default) are allowed, and
every attribute path read from these resources exists."""

from __future__ import annotations

import copy
import difflib
import json
import re
import shutil
import subprocess

import hcl2
import pytest

from tests.aws.schema_facts import FIXTURE, provider_schema, trimmed
from tests.aws.stackfiles import GO_ENV, STACK, cli_config, plugin_mirror, stack_against

FACTS = json.loads(FIXTURE.read_text())
WHERE = f"[{FACTS['provider']['source']} {FACTS['provider']['version']}]"
META = {"count", "for_each", "depends_on", "lifecycle", "provider"}
# Terraform's built-in provider (terraform.io/builtin/terraform): resource -> its arguments
BUILTIN = {"terraform_data": {"input", "triggers_replace"}}
UNTAGGED = {"aws_route", "aws_route_table_association", "aws_iam_role_policy"}
BUILDER_ONLY = {"aws_ami_from_instance"}  # in the fact table for terraform/aws-image-builder (tests/image)
REF = re.compile(r"(?<![\w.])(data\.)?(aws_\w+)\.(\w+)((?:\[[^\]]*\]|\.\w+|\.\*)*)")
FOR = re.compile(r"\bfor\s+(?:\w+\s*,\s*)?(\w+)\s+in\s+(data\.)?(aws_\w+)\.(\w+)\s*:")


def _unq(value):
    return value[1:-1] if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"' else value


def _plain(node):
    if isinstance(node, dict):
        return {_unq(k): _plain(v) for k, v in node.items()}
    return [_plain(v) for v in node] if isinstance(node, list) else _unq(node)


def _is_block(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(x, dict) and x.get("__is_block__") for x in value)


def load(directory) -> dict:
    module: dict = {"blocks": [], "variables": {}, "texts": [], "provider": {}}
    for path in sorted(directory.glob("*.tf")):
        doc = _plain(hcl2.load(path.open()))
        for kind in ("resource", "data"):
            for block in doc.get(kind, []):
                module["blocks"] += [(kind, t, n, body) for t, named in block.items() for n, body in named.items()]
        for block in doc.get("variable", []):
            module["variables"].update(block)
        for block in doc.get("provider", []):
            module["provider"].update(block)
        module["texts"].append(json.dumps(doc))
    return module


class Checker:
    def __init__(self, module: dict) -> None:
        self.module, self.errors, self.arguments, self.references = module, [], 0, 0

    def _fail(self, where: str, problem: str, fix: str) -> None:
        self.errors.append(f"{where}: {problem} -- fix: {fix} {WHERE}")

    def _literal(self, value):
        if isinstance(value, (bool, int)) or (isinstance(value, str) and "${" not in value):
            return [value]
        if isinstance(value, str) and (m := re.fullmatch(r"\$\{var\.(\w+)\}", value)):
            default = self.module["variables"].get(m.group(1), {}).get("default")
            return [default] if default is not None and not isinstance(default, (list, dict)) else []
        return []

    def block(self, kind: str, rtype: str, name: str, body: dict) -> None:
        address = f"{'data.' if kind == 'data' else ''}{rtype}.{name}"
        if kind == "resource" and rtype in BUILTIN:  # Terraform's own provider, no AWS fact applies
            for arg in set(body) - META - BUILTIN[rtype]:
                if not arg.startswith("__"):
                    self._fail(address, f"argument '{arg}' does not exist in {rtype}", f"use {sorted(BUILTIN[rtype])}")
            return None
        schema = FACTS[kind].get(rtype)
        if schema is None:
            return self._fail(
                address, f"{kind} type {rtype} is not in the fact table", "add it to schema_facts.py and regenerate"
            )
        self._body(address, rtype, schema, body, "")

    def _body(self, address: str, rtype: str, schema: dict, body: dict, prefix: str) -> None:
        given = {k: v for k, v in body.items() if not k.startswith("__") and not (not prefix and k in META)}
        for dyn in given.pop("dynamic", []):
            given.update({name: [{**d["content"][0], "__is_block__": True}] for name, d in dyn.items()})
        for arg, value in given.items():
            self.arguments += 1
            here, path = f"{address}.{prefix}{arg}", f"{prefix}{arg}"
            attr, sub = schema["attributes"].get(arg), schema["blocks"].get(arg)
            if attr is None and sub is None:
                close = difflib.get_close_matches(arg, list(schema["attributes"]) + list(schema["blocks"]), n=1)
                self._fail(
                    here,
                    f"argument '{arg}' does not exist in the provider schema",
                    f"use '{close[0]}'" if close else "remove it or check the provider docs",
                )
            elif attr is not None:
                if _is_block(value):
                    self._fail(here, f"'{arg}' has the wrong form", f"write it as an attribute `{arg} = ...`")
                elif attr.get("computed") and not (attr.get("optional") or attr.get("required")):
                    self._fail(here, f"'{arg}' is computed-only (read-only)", "remove it")
                self._values(here, rtype, path, value)
            elif not _is_block(value):
                self._fail(here, f"'{arg}' has the wrong form", f"write it as a nested block `{arg} {{ ... }}`")
            else:
                if len(value) > sub.get("max_items", len(value)):
                    self._fail(here, f"{len(value)} '{arg}' blocks, the provider allows {sub['max_items']}", "drop the extra")
                for item in value:
                    self._body(address, rtype, sub["block"], item, f"{path}.")
        for arg, attr in schema["attributes"].items():
            if attr.get("required") and arg not in given:
                self._fail(f"{address}.{prefix}{arg}", f"required argument '{arg}' is missing", f"set {arg}")

    def _values(self, here: str, rtype: str, path: str, value) -> None:
        allowed = FACTS["api_values"].get(rtype, {}).get(path)
        bounds = FACTS["api_ranges"].get(rtype, {}).get(path)
        for literal in self._literal(value):
            if allowed and str(literal) not in allowed:
                self._fail(here, f"value {literal!r} is not allowed", f"use one of {allowed}")
            if bounds and not bounds[0] <= int(literal) <= bounds[1]:
                self._fail(here, f"value {literal} is out of range", f"stay within {bounds}")

    def references_in(self, text: str, declared: set) -> None:
        refs = [(m.group(1), m.group(2), m.group(3), re.findall(r"\.(\w+)", m.group(4))) for m in REF.finditer(text)]
        for loop in FOR.finditer(text):  # `for id, ami in data.aws_ami.candidate : ami.name` reads candidate's name
            for use in re.finditer(rf"(?<![\w.]){loop.group(1)}\.(\w+)", text[loop.end() :]):
                refs.append((loop.group(2), loop.group(3), loop.group(4), [use.group(1)]))
        for data, rtype, name, steps in refs:
            kind, address = "data" if data else "resource", f"{data or ''}{rtype}.{name}"
            self.references += 1
            if (kind, rtype, name) not in declared:
                self._fail(address, "referenced but not declared", "declare it or correct the reference")
                continue
            schema = FACTS[kind][rtype]
            if steps and steps[0] not in schema["attributes"] and steps[0] not in schema["blocks"]:
                close = difflib.get_close_matches(steps[0], schema["attributes"], n=1)
                self._fail(address, f"attribute '{steps[0]}' does not exist", f"use '{close[0]}'" if close else "read one it has")


def check(module: dict) -> Checker:
    checker = Checker(module)
    for block in module["blocks"]:
        checker.block(*block)
    declared = {(k, t, n) for k, t, n, _ in module["blocks"]}
    for text in module["texts"]:
        checker.references_in(text.replace('\\"', '"'), declared)
    return checker


@pytest.fixture(scope="module")
def root() -> dict:
    return load(STACK)


def test_stack_matches_the_provider_schema(root):
    checker = check(root)
    assert not checker.errors, "\n".join(checker.errors)
    types = {(kind, rtype) for kind, rtype, _, _ in root["blocks"] if rtype not in BUILTIN}
    facts = {(k, t) for k in ("resource", "data") for t in FACTS[k]} - {("resource", t) for t in BUILDER_ONLY}
    assert types == facts, "the fact table and the stack name different types"
    assert checker.arguments >= 60 and checker.references >= 15, (checker.arguments, checker.references)


def test_every_taggable_resource_gets_the_run_tags(root):
    """``default_tags`` reach every resource whose schema has ``tags_all``: all but the untaggable."""
    untagged = {t for t, schema in FACTS["resource"].items() if "tags_all" not in schema["attributes"]}
    assert untagged == UNTAGGED
    assert "default_tags" in FACTS["provider_config"]["blocks"] and root["provider"]["aws"]["default_tags"]


def test_the_tests_endpoint_override_is_provider_configuration(tmp_path):
    text = (stack_against("http://127.0.0.1:1", tmp_path / "s") / "endpoints_override.tf").read_text()
    provider = _plain(hcl2.loads(text))["provider"][0]["aws"]
    facts = FACTS["provider_config"]
    assert set(provider) - {"endpoints", "__is_block__"} <= set(facts["attributes"])
    assert set(provider["endpoints"][0]) - {"__is_block__"} <= set(facts["blocks"]["endpoints"]["block"]["attributes"])


WORKER = ("aws_instance", "worker")
MUTATIONS = {
    "misspelt argument": (
        WORKER,
        lambda b: b.update(instance_typ=b.pop("instance_type")),
        ["'instance_typ' does not exist", "use 'instance_type'"],
    ),
    "required dropped": (
        ("aws_iam_role", "vm"),
        lambda b: b.pop("assume_role_policy"),
        ["required argument 'assume_role_policy'"],
    ),
    "computed-only": (WORKER, lambda b: b.update(arn="arn:x"), ["'arn' is computed-only"]),
    "enum value": (WORKER, lambda b: b.update(instance_initiated_shutdown_behavior="hibernate"), ["'hibernate' is not allowed"]),
    "nested enum": (
        WORKER,
        lambda b: b["metadata_options"][0].update(http_tokens="always"),
        ["metadata_options.http_tokens", "'always'"],
    ),
    "range": (WORKER, lambda b: b["metadata_options"][0].update(http_put_response_hop_limit=65), ["out of range", "[1, 64]"]),
    "max_items": (
        WORKER,
        lambda b: b["root_block_device"].append(copy.deepcopy(b["root_block_device"][0])),
        ["2 'root_block_device' blocks"],
    ),
    "block as attribute": (
        WORKER,
        lambda b: b.update(metadata_options="${local.x}"),
        ["wrong form", "`metadata_options { ... }`"],
    ),
    "dynamic content": (
        WORKER,
        lambda b: b["dynamic"][0]["instance_market_options"]["content"][0].update(market="spot"),
        ["instance_market_options.market", "use 'market_type'"],
    ),
}


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_checker_reports_a_broken_block(root, case):
    (rtype, name), mutate, expected = MUTATIONS[case]
    kind, _, _, body = next(b for b in root["blocks"] if b[1:3] == (rtype, name))
    mutate(broken := copy.deepcopy(body))
    checker = Checker(root)
    checker.block(kind, rtype, name, broken)
    report = "\n".join(checker.errors)
    assert report and all(text in report for text in expected), report
    assert f"{rtype}.{name}" in report and WHERE in report


def test_checker_reports_a_wrong_attribute_path(root):
    checker = Checker(root)
    declared = {(k, t, n) for k, t, n, _ in root["blocks"]}
    checker.references_in("${aws_instance.worker[0].privat_ip}", declared)
    checker.references_in("${[for i, vm in aws_instance.worker : vm.availabilty_zone]}", declared)
    checker.references_in("${aws_vpc.other.id}", declared)
    report = "\n".join(checker.errors)
    assert "'privat_ip' does not exist -- fix: use 'private_ip'" in report and "use 'availability_zone'" in report, report
    assert "aws_vpc.other: referenced but not declared" in report


@pytest.mark.slow  # terraform init and providers schema
def test_the_fixture_is_the_real_providers_schema(tmp_path):
    if plugin_mirror()[0] is None or shutil.which("terraform") is None:
        pytest.skip(plugin_mirror()[1] or "no terraform binary on PATH")
    assert trimmed(provider_schema(tmp_path)) == FACTS, (
        "regenerate: python -m tests.aws.schema_facts > tests/aws/aws_provider_schema.json"
    )


@pytest.mark.slow  # terraform init and validate
def test_terraform_validate_with_the_real_provider(tmp_path):
    mirror, why = plugin_mirror()
    if mirror is None or shutil.which("terraform") is None:
        pytest.skip(why or "no terraform binary on PATH")
    work = tmp_path / "stack"
    shutil.copytree(STACK, work)
    env = {
        "TF_CLI_CONFIG_FILE": str(cli_config(tmp_path / "rc", mirror)),
        "CHECKPOINT_DISABLE": "1",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        **GO_ENV,
    }
    for command in (["init", "-backend=false", "-input=false", "-no-color"], ["validate", "-no-color"]):
        done = subprocess.run(["terraform", *command], cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
