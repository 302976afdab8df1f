"""Code reads the config through its models, never by string keys.

``Config`` gives each core section as a typed attribute (``config.workspace.name``,
``config.timeouts.hard``) and a plugin's or deploy target's own section through
``config.section(ItsModel)``; mypy checks every such read. This fitness test catches
what mypy cannot see: a string-key read of a config section (``config["workspace"]``,
``ctx.config.get("cost")``) in code whose ``config`` is untyped. Only ``ephemera/config/``
(the loader, the boundary) handles the raw mapping.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ephemera.assembly import load_config
from ephemera.config import Config, ConfigError
from ephemera.assembly.model import root_model
from ephemera.config.sections import ActionName, TriggerKind
from ephemera.storage.aws_s3.config import S3Section

REPO = Path(__file__).resolve().parents[1]
BOUNDARY = REPO / "ephemera" / "config"  # the loader: the one place that reads the raw mapping
FIX = (
    "read it through its model: e.g. config.workspace.name, config.timeouts.hard; "
    "a plugin's or deploy target's own section is config.section(ItsSectionModel)"
)


def _config_named(node: ast.AST) -> bool:
    """An expression that names a config: ``config``, ``self.config``, ``ctx.config``, ``cfg``..."""
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return name == "cfg" or name.lower().endswith("config")


def string_key_reads(source: str, sections: set[str]) -> list[tuple[int, str]]:
    """(line, section) of every string-key read of a config section in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        key = None
        if isinstance(node, ast.Subscript) and _config_named(node.value) and isinstance(node.slice, ast.Constant):
            key = node.slice.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("get", "setdefault")
            and _config_named(node.func.value)
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            key = node.args[0].value
        if isinstance(key, str) and key in sections:
            found.append((node.lineno, key))
    return sorted(found)


def _sections() -> set[str]:
    return set(root_model().model_fields)


def test_the_scan_catches_string_key_reads():
    """The scan itself: each form of a string-key read is found, a typed read is not."""
    source = (
        'a = config["workspace"]["name"]\nb = ctx.config["timeouts"]\nc = self.config.get("cost")\n'
        'd = config.workspace.name\ne = cfg["lithops"]\nf = config.section(S3Section).region\n'
    )
    assert string_key_reads(source, _sections()) == [(1, "workspace"), (2, "timeouts"), (3, "cost")]


def test_no_code_outside_the_loader_reads_a_config_section_by_string_key():
    sections = _sections()
    bad = []
    for path in sorted((REPO / "ephemera").rglob("*.py")):
        if BOUNDARY in path.parents or "stacks" in path.relative_to(REPO).parts:
            continue
        bad += [
            f"{path.relative_to(REPO)}:{line} reads the config section '{key}' by string key"
            for line, key in string_key_reads(path.read_text(), sections)
        ]
    assert not bad, "\n".join(bad) + f"\n{FIX}"


def test_config_has_no_string_access():
    """The string access is gone, so a new ``config["x"]`` fails at once, not only here."""
    config = load_config({})
    assert not hasattr(config, "get")
    with pytest.raises(TypeError):
        config["workspace"]  # type: ignore[index]  # the point: it is not subscriptable


def test_typed_sections_hold_the_validated_values(tmp_path):
    config = load_config(
        {
            "workspace": {"name": "ws-1", "variables": {"worker_count": 2}},
            "timeouts": {"hard": "2h"},
            "aws_s3": {"region": "eu-west-1"},
            "storage": {"bucket": "state-b"},
        }
    )
    assert config.workspace.name == "ws-1" and config.workspace.variables == {"worker_count": 2}
    assert config.timeouts.hard == 7200  # "2h", parsed once by the model
    assert config.state_bucket == "state-b" and config.output_bucket == "state-b"
    assert config.section(S3Section).region == "eu-west-1"
    assert config.section(S3Section) is config.section(S3Section)  # the validated model itself, not a copy
    assert config.to_dict()["aws_s3"]["region"] == "eu-west-1"  # the plain form actions get is the same data


def test_a_model_no_plugin_declares_is_a_clear_lookup_error():
    from ephemera.sections import Section

    class Stray(Section):
        """declared by nobody"""

    with pytest.raises(LookupError, match="Stray.*register the plugin"):
        load_config({}).section(Stray)


def test_triggers_and_rules_are_typed_entries():
    """Closed sets are str-Enums: the YAML's strings become members, and a typo is a ConfigError naming the key."""
    config = load_config(
        {
            "triggers": [
                {"name": "nightly", "kind": "alarm", "cron": "0 2 * * *"},
                {"name": "done", "kind": "object_write", "suffix": "_SUCCESS.json"},
            ],
            "rules": [{"trigger": "nightly", "action": "apply"}, {"trigger": "done", "action": "destroy"}],
        }
    )
    nightly, done = config.triggers
    assert nightly.kind is TriggerKind.ALARM and nightly.schedule is not None and nightly.schedule.cron == "0 2 * * *"
    assert done.kind is TriggerKind.OBJECT_WRITE and done.schedule is None and done.bucket == config.state_bucket
    assert [r.action for r in config.rules] == [ActionName.APPLY, ActionName.DESTROY]
    assert config.rules[0].name == "nightly-apply"  # the default name, completed by validation
    assert config.to_dict()["rules"][0]["action"] == "apply"  # the plain form carries the plain value
    with pytest.raises(ConfigError) as info:
        load_config({"triggers": [{"name": "x", "kind": "alarms"}]})
    assert info.value.field == "triggers[0].kind"
    with pytest.raises(ConfigError) as info:
        load_config({"triggers": [{"name": "x", "kind": "alarm", "cron": "* * * * *"}], "rules": [{"trigger": "x", "action": 1}]})
    assert info.value.field == "rules[0].action"


def test_a_config_from_a_dict_goes_through_validation():
    """There is no way around the loader: a Config is built from a validated model."""
    with pytest.raises(ConfigError):
        load_config({"timeouts": {"hard": "soon"}})
    assert isinstance(load_config({}), Config)
