"""The checker behind ``test_provider_schema``: a Terraform module read with hcl2 and
checked block by block against the IBM provider's fact table (``ibm_provider_schema.json``).
Its facts and what it asserts are in ``test_provider_schema``'s docstring."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import hcl2

HERE = Path(__file__).resolve().parent
STACK = HERE.parents[1] / "terraform" / "ibm-vpc-gpu"
FACTS = json.loads((HERE / "ibm_provider_schema.json").read_text())
PROVIDER = f"{FACTS['provider']['registry_source']} {FACTS['provider']['tag']}"
META = {"count", "for_each", "depends_on", "lifecycle", "provider"}
UNKNOWN = "<unknown>"  # a value the checker cannot resolve to a literal
# Terraform's built-in provider (terraform.io/builtin/terraform): resource -> its arguments
BUILTIN = {"terraform_data": {"input", "triggers_replace"}}
KNOWN_DEPRECATED = {("ibm_is_security_group_rule.debug_ssh", "tcp")}  # deprecated, not removed: kept as is
REF = re.compile(r"(?<![\w.])(data\.)?(ibm_is_\w+)\.(\w+)((?:\[[^\]]*\]|\.\w+|\.\*)*)")
FOR = re.compile(r"\bfor\s+(?:\w+\s*,\s*)?(\w+)\s+in\s+(data\.)?(ibm_is_\w+)\.(\w+)((?:\[[^\]]*\]|\.\w+)*)\s*:")


def _unq(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def _is_block(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(x, dict) and x.get("__is_block__") for x in value)


def _strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    for child in node.values() if isinstance(node, dict) else node if isinstance(node, list) else ():
        yield from _strings(child)


def _names(path: str) -> list[str]:
    """``[0].primary_ip[*].address`` -> ["primary_ip", "address"]: the attribute steps."""
    return [name for name in re.findall(r"\.(\w+)|\[[^\]]*\]|\.\*", path) if name]


@dataclass
class Module:
    blocks: list[tuple[str, str, str, dict]] = field(default_factory=list)  # (resource | data, type, name, body)
    variables: dict[str, dict] = field(default_factory=dict)
    locals: dict[str, object] = field(default_factory=dict)
    documents: list[dict] = field(default_factory=list)


def load_module(directory: Path) -> Module:
    module = Module()
    for path in sorted(directory.glob("*.tf")):
        module.documents.append(doc := hcl2.load(path.open()))
        for kind in ("resource", "data"):
            for block in doc.get(kind, []):
                module.blocks += [(kind, _unq(t), _unq(n), body) for t, named in block.items() for n, body in named.items()]
        for block in doc.get("variable", []):
            module.variables.update({_unq(k): v for k, v in block.items()})
        for block in doc.get("locals", []):
            module.locals.update({k: v for k, v in block.items() if not k.startswith("__")})
    return module


def _split_conditional(expr: str) -> tuple[str, str, str] | None:
    """``cond ? a : b`` (top level) as (cond, a, b), or None."""
    depth, quote, question, nested = 0, False, None, 0
    for i, ch in enumerate(expr):
        if ch == '"' and expr[i - 1 : i] != "\\":
            quote = not quote
        elif quote:
            continue
        elif ch in "([{" or ch in ")]}":
            depth += 1 if ch in "([{" else -1
        elif depth == 0 and ch == "?":
            nested, question = nested + (question is not None), i if question is None else question
        elif depth == 0 and ch == ":" and question is not None:
            if not nested:
                return expr[:question].strip(), expr[question + 1 : i].strip(), expr[i + 1 :].strip()
            nested -= 1
    return None


def candidates(value: object, module: Module, depth: int = 0) -> list:
    """The literal values ``value`` can take (None = null); UNKNOWN where it cannot be resolved."""
    if not isinstance(value, str) or depth > 8:
        return [UNKNOWN] if isinstance(value, (list, dict)) or depth > 8 else [value]
    if value.startswith("${") and value.endswith("}"):
        return _expr(value[2:-1].strip(), module, depth)
    return [value[1:-1]] if value[:1] == value[-1:] == '"' and "${" not in value else [UNKNOWN]


def _expr(expr: str, module: Module, depth: int) -> list:
    while expr.startswith("(") and expr.endswith(")") and _split_conditional(expr[1:-1]):
        expr = expr[1:-1].strip()
    if parts := _split_conditional(expr):
        cond, then, other = parts
        sides = [_expr(then, module, depth + 1), _expr(other, module, depth + 1)]
        if m := re.fullmatch(r'(\S+)\s*(!=|==)\s*("[^"$]*"|null|-?\d+)', cond):  # `x != "" ? x : y` never gives "" from x
            side = 0 if m.group(2) == "!=" else 1
            if (then, other)[side] == m.group(1):
                excluded = _expr(m.group(3), module, depth + 1)[0]
                sides[side] = [v for v in sides[side] if v != excluded] or [UNKNOWN]
        return sides[0] + sides[1]
    if expr in ("null", "true", "false"):
        return [{"null": None, "true": True, "false": False}[expr]]
    if re.fullmatch(r"-?\d+", expr):
        return [int(expr)]
    if re.fullmatch(r'"[^"$]*"', expr):
        return [expr[1:-1]]
    if m := re.fullmatch(r"var\.(\w+)", expr):
        var = module.variables.get(m.group(1), {})
        found = candidates(var["default"], module, depth + 1) if "default" in var else []
        for rule in var.get("validation", []):
            if allowed := re.search(rf"contains\(\[([^\]]*)\],\s*var\.{m.group(1)}\)", str(rule.get("condition"))):
                found += re.findall(r'"([^"]*)"', allowed.group(1))
        return found or [UNKNOWN]
    if (m := re.fullmatch(r"local\.(\w+)", expr)) and m.group(1) in module.locals:
        return candidates(module.locals[m.group(1)], module, depth + 1)
    return [UNKNOWN]


class Checker:
    def __init__(self, module: Module) -> None:
        self.module, self.errors, self.deprecated = module, [], set()
        self.arguments = self.references = 0

    def _fail(self, address: str, problem: str, fix: str, where: str = "") -> None:
        self.errors.append(f"{address}: {problem} -- fix: {fix} [{PROVIDER}{' ' + where if where else ''}]")

    def block(self, kind: str, rtype: str, name: str, body: dict) -> None:
        address = f"{'data.' if kind == 'data' else ''}{rtype}.{name}"
        if kind == "resource" and rtype in BUILTIN:  # Terraform's own provider, no IBM fact applies
            for arg in set(body) - META - BUILTIN[rtype]:
                if not arg.startswith("__"):
                    self._fail(address, f"argument '{arg}' does not exist in {rtype}", f"use {sorted(BUILTIN[rtype])}")
            return None
        if (facts := FACTS[kind].get(rtype)) is None:
            return self._fail(address, f"{kind} type {rtype} is not in the fact table", "add it to ibm_provider_schema.json")
        present: dict[str, bool] = {}  # provider path ("boot_volume.0.name") -> set and never null
        levels: list[tuple[str, dict]] = []  # (path prefix, schema) of every level the block sets
        self._body(address, facts["source"], facts["arguments"], body, "", present, levels)
        self._relations(address, facts["source"], present, levels)

    def _body(self, address: str, source: str, schema: dict, body: dict, prefix: str, present: dict, levels: list) -> None:
        levels.append((prefix, schema))
        body = dict(body)
        for dyn in body.pop("dynamic", []):  # `dynamic "x" { content { ... } }` sets block x (at most once here)
            body.update({_unq(name): [d["content"][0]] for name, d in dyn.items() if not name.startswith("__")})
        for arg, value in body.items():
            if arg.startswith("__") or (not prefix and arg in META):
                continue
            self.arguments += 1
            here, facts = f"{address}.{prefix.replace('.0.', '[0].')}{arg}", schema.get(arg)
            if facts is None:
                close = difflib.get_close_matches(arg, schema, n=1)
                self._fail(
                    here,
                    f"argument '{arg}' does not exist in the provider schema",
                    f"use '{close[0]}'" if close else "remove it or check the provider docs",
                    source,
                )
                continue
            where, is_block = f"{source}:{facts['line']}", facts.get("elem") == "block"
            self.deprecated |= {(address, prefix + arg)} if "deprecated" in facts else set()
            if facts["mode"] == "computed":
                self._fail(here, f"'{arg}' is computed-only (read-only)", "remove it", where)
            elif is_block != _is_block(value):
                self._fail(
                    here,
                    f"'{arg}' has the wrong form",
                    f"write it as {'a nested block' if is_block else 'an attribute'} "
                    f"`{arg} {'{ ... }' if is_block else '= ...'}`",
                    where,
                )
            elif is_block:
                present[prefix + arg] = True
                if len(value) > facts.get("max_items", len(value)):
                    self._fail(
                        here, f"{len(value)} '{arg}' blocks, the provider allows {facts['max_items']}", "drop the extra", where
                    )
                if "block" not in facts:
                    self._fail(here, f"nested block '{arg}' has no recorded schema", "add it to ibm_provider_schema.json", where)
                for item in value if "block" in facts else []:
                    self._body(address, source, facts["block"], item, f"{prefix}{arg}.0.", present, levels)
            else:
                present[prefix + arg] = None not in (values := candidates(value, self.module))
                self._values(here, arg, facts, values, facts.get("validated_at", where))
        for arg, facts in schema.items():
            if facts["mode"] == "required" and (body.get(arg) is None or not present.get(prefix + arg, True)):
                problem = "is missing" if body.get(arg) is None else "may be null"
                self._fail(
                    f"{address}.{prefix.replace('.0.', '[0].')}{arg}",
                    f"required argument '{arg}' {problem}",
                    f"set {arg}",
                    f"{source}:{facts['line']}",
                )

    def _values(self, here: str, arg: str, facts: dict, values: list, where: str) -> None:
        allowed, kind = facts.get("allowed") or facts.get("api_values"), facts["kind"]
        for value in (v for v in values if v is not None and v != UNKNOWN):
            if kind in ("int", "float") and (isinstance(value, bool) or not re.fullmatch(r"-?[\d.]+", str(value))):
                self._fail(here, f"{value!r} is not a number, '{arg}' is {kind}", "give a number", where)
            elif kind == "bool" and str(value).lower() not in ("true", "false"):
                self._fail(here, f"{value!r} is not a bool", "give true or false", where)
            elif allowed and str(value) not in allowed:
                self._fail(here, f"value {value!r} is not allowed for '{arg}'", f"use one of {allowed}", where)
            elif "range" in facts and not facts["range"][0] <= float(value) <= facts["range"][1]:
                self._fail(here, f"value {value} is out of range for '{arg}'", f"stay within {facts['range']}", where)
            elif "pattern" in facts and not (
                re.fullmatch(facts["pattern"], str(value)) and len(str(value)) <= facts["length"][1]
            ):
                self._fail(
                    here, f"value {value!r} does not match {facts['pattern']}", f"match it, <= {facts['length'][1]} chars", where
                )

    def _relations(self, address: str, source: str, present: dict, levels: list) -> None:
        seen: set[tuple[str, frozenset]] = set()
        for prefix, schema in levels:
            for arg, facts in schema.items():
                path, where = prefix + arg, f"{source}:{facts['line']}"
                for other in facts.get("conflicts_with", []) if present.get(path) else []:
                    if present.get(other):
                        self._fail(address, f"'{path}' conflicts with '{other}', both are set", "set only one of them", where)
                for other in facts.get("required_with", []) if present.get(path) else []:
                    if other not in present:
                        self._fail(address, f"'{path}' requires '{other}'", f"set {other} too", where)
                for relation in ("exactly_one_of", "at_least_one_of"):
                    if not (group := frozenset(facts.get(relation, []))) or (relation, group) in seen:
                        continue
                    seen.add((relation, group))
                    if not group & set(present):
                        self._fail(address, f"none of {sorted(group)} is set ({relation})", f"set one of {sorted(group)}", where)
                    elif relation == "exactly_one_of" and sum(bool(present.get(p)) for p in group) > 1:
                        self._fail(address, f"more than one of {sorted(group)} is set", "set exactly one", where)

    def reference_paths(self, text: str, declared: set[tuple[str, str, str]]) -> None:
        refs = [(m.group(1), m.group(2), m.group(3), _names(m.group(4))) for m in REF.finditer(text)]
        for loop in FOR.finditer(text):  # `for vm in ibm_is_instance.worker : vm.zone` reads worker's zone
            for use in re.finditer(rf"(?<![\w.]){loop.group(1)}((?:\[[^\]]*\]|\.\w+)+)", text[loop.end() :]):
                refs.append((loop.group(2), loop.group(3), loop.group(4), _names(loop.group(5)) + _names(use.group(1))))
        for data, rtype, name, names in refs:
            kind, address = "data" if data else "resource", f"{data or ''}{rtype}.{name}"
            self.references += 1
            if (kind, rtype, name) not in declared:
                self._fail(address, f"referenced in `{text[:60]}` but not declared", "declare it or correct the reference")
                continue
            schema, source = FACTS[kind][rtype]["arguments"], FACTS[kind][rtype]["source"]
            for i, step in enumerate(names):
                path, facts = ".".join(names), schema.get(step)
                if facts is None and not (i == 0 and step == "id"):
                    close = difflib.get_close_matches(step, schema, n=1)
                    self._fail(
                        address,
                        f"attribute path {path}: '{step}' does not exist",
                        f"use '{close[0]}'" if close else "read an attribute the provider has",
                        source,
                    )
                if facts is None or i + 1 == len(names) or facts["kind"] == "map":
                    break
                if "block" not in facts:
                    problem = "is a " + facts["kind"] if facts.get("elem") != "block" else "has no recorded schema"
                    self._fail(
                        address,
                        f"attribute path {path}: '{step}' {problem}",
                        f"stop at {step} or record its block",
                        f"{source}:{facts['line']}",
                    )
                    break
                schema = facts["block"]


def check(module: Module) -> Checker:
    checker = Checker(module)
    for block in module.blocks:
        checker.block(*block)
    declared = {(kind, rtype, name) for kind, rtype, name, _ in module.blocks}
    for text in {s for doc in module.documents for s in _strings(doc)}:
        checker.reference_paths(text, declared)
    return checker
