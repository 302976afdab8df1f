"""One declaration per config section, and what is derived from it: README's key
table, the JSON Schema editors use (``ephemera config --schema``), secret masking,
and typed access.

JSON Schema facts relied on (json-schema.org, draft 2020-12 validation vocabulary):
``additionalProperties: false`` rejects keys not listed in ``properties``, and
``writeOnly: true`` marks a value that is sent but never read back, the marking
editors and generators use for passwords.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from ephemera.cli import main as cli_main
from ephemera.assembly import json_schema, raw_secret_values, root_model, validate
from ephemera.assembly.docs import PAGE, key_table, page_table
from ephemera.config import REDACTED
from ephemera.config.schema import secret_paths
from ephemera.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _readme_yaml_blocks() -> list[dict]:
    """The YAML configs of the README and the docs pages."""
    text = "\n".join(p.read_text() for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))])
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.S)]
    return [b for b in blocks if isinstance(b, dict) and "storage" in b]


def test_the_configuration_pages_key_table_is_the_rendered_one():
    table = page_table((REPO / PAGE).read_text())
    assert table is not None, f"{PAGE} lost the generated block of config keys"
    assert table == key_table(), f"{PAGE}'s key table is stale: run `python -m ephemera.assembly.docs {PAGE}`"


def test_key_table_lists_every_key_with_secrets_marked():
    rows = {line.split("|")[1].strip(" `"): line for line in key_table().splitlines()[2:]}
    for section, key in secret_paths(root_model()):
        assert "**secret**" in rows[f"{section}.{key}"]
    assert "`4h`" not in rows["timeouts.hard"] and "`14400`" in rows["timeouts.hard"]  # defaults as loaded
    assert "required" in rows["triggers[].name"] and "`ibm_cos`" in rows["storage.backend"]
    assert {"storage.bucket", "aws_s3.endpoint", "schematics.workspace_id", "rules[].action", "home"} <= set(rows)


def test_the_schema_accepts_the_shipped_configs_and_rejects_bad_ones():
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    examples = [yaml.safe_load((REPO / "examples" / "ibm-cloud.yaml").read_text()), *_readme_yaml_blocks(), {}]
    assert len(examples) >= 3
    for example in examples:
        assert list(validator.iter_errors(example)) == []
        validate(example)  # and the loader agrees
    for bad in (
        {"storge": {}},
        {"storage": {"buckt": "x"}},
        {"storage": {"backend": "gcs"}},
        {"timeouts": {"hard": True}},
        {"triggers": [{"name": "t", "kind": "webhook"}]},
        {"rules": [{"action": "apply"}]},
    ):
        assert list(validator.iter_errors(bad)), bad
        with pytest.raises(ConfigError):
            validate(bad)


def test_schema_marks_exactly_the_masked_fields_secret():
    schema = json_schema()
    marked = set()
    for name, model in schema["$defs"].items():
        for key, prop in model.get("properties", {}).items():
            if prop.get("writeOnly"):
                marked.add(key)
    assert marked == {key for _, key in secret_paths(root_model())}
    assert {("aws_s3", "secret_access_key"), ("ibm_cos", "api_key"), ("ibm", "iam_api_key")} <= set(secret_paths(root_model()))


def _is_mapping(section: str, key: str) -> bool:
    model = root_model().model_fields[section].annotation
    return "dict" in str(model.model_fields[key].annotation)


def test_every_secret_is_masked_and_scrubbed():
    """A secret is a string, or a mapping of secret values (schematics.secure_variables)."""
    raw: dict = {}
    for section, key in secret_paths(root_model()):
        value = f"value-of-{section}-{key}-0123456789"
        value = f"https://{value}" if key.endswith("_url") else value  # a webhook URL is checked as one
        raw.setdefault(section, {})[key] = {"a_variable": value} if _is_mapping(section, key) else value
    config = validate(raw)  # localhost storage: the cloud sections are declared but unused
    expected = {
        ("https://" if k.endswith("_url") else "") + f"value-of-{s}-{k}-0123456789" for s, k in secret_paths(root_model())
    }
    assert set(config.secret_values()) == expected
    shown = json.dumps(config.to_dict())
    assert not any(v in shown for v in expected) and shown.count(REDACTED) == len(expected)
    assert config.to_dict(redact=False)["ibm"]["iam_api_key"] == "value-of-ibm-iam_api_key-0123456789"


def test_secrets_in_the_wrong_shape_are_still_known_before_validation():
    raw = {
        "ibm": {"iam_api_key": ["key-in-a-list-123"]},
        "aws_s3": {"secret_access_key": {"value": "key-in-a-map-456"}},
        "ibm_cos": {"api_key": 7890123},
    }
    assert set(raw_secret_values(raw)) == {"key-in-a-list-123", "key-in-a-map-456", "7890123"}
    for section, key, value in (("ibm", "iam_api_key", ["key-in-a-list-123"]), ("ibm_cos", "api_key", 7890123)):
        with pytest.raises(ConfigError) as info:
            validate({section: {key: value}})
        assert info.value.field == f"{section}.{key}" and str(value) not in str(info.value)
    with pytest.raises(ConfigError) as info:  # a value that is not secret is quoted, to help
        validate({"workspace": {"stack": 5}})
    assert "got int 5" in str(info.value)


def test_null_means_the_default_and_sections_are_typed():
    config = validate({"storage": None, "timeouts": {"hard": None, "soft": "90s"}, "workload": {"output_bucket": None}})
    assert config.storage.model_dump() == {"backend": "localhost", "bucket": "ephemera"}
    assert config.model.timeouts.hard == 4 * 3600 and config.model.timeouts.soft == 90
    assert config.model.storage.backend == "localhost" and config.output_bucket == "ephemera"


def test_config_schema_command_needs_no_valid_config(tmp_path, monkeypatch, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("storage: {buckt: x}\n")
    monkeypatch.setenv("EPHEMERA_CONFIG_FILE", str(broken))
    assert cli_main(["config", "--schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json_schema()
    assert cli_main(["config"]) == 2  # without --schema the broken config is reported
    assert "storage.buckt" in capsys.readouterr().err
