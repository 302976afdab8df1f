"""Config loading and validation: every bad value is named, with its fix."""

from __future__ import annotations

import pytest

from ephemera.assembly import load_config, validate
from ephemera.config import REDACTED
from ephemera.errors import ConfigError


def test_defaults_are_local():
    config = validate({})
    assert config.storage.backend == "localhost"
    assert config.engine.backend == "terraform"
    assert config.workspace.stack == "local"
    assert config.timeouts.hard == 4 * 3600


@pytest.mark.parametrize(
    "raw, field, words",
    [
        ({"storge": {}}, "storge", "unknown section"),
        ({"storage": {"bucket": "ok-bucket", "buckt": "x"}}, "storage.buckt", "unknown key"),
        ({"storage": {"backend": "gcs"}}, "storage.backend", "not one of"),
        ({"storage": {"bucket": "Bad_Bucket"}}, "storage.bucket", "invalid"),
        ({"timeouts": {"hard": "soon"}}, "timeouts.hard", "not a duration"),
        ({"timeouts": {"hard": -5}}, "timeouts.hard", "positive"),
        ({"workspace": {"variables": [1, 2]}}, "workspace.variables", "mapping"),
        ({"workload": {"entry": "no-colon"}}, "workload.entry", "package.module:function"),
        ({"workload": {"output_prefix": "../up"}}, "workload.output_prefix", "not a valid key prefix"),
        ({"triggers": [{"name": "t", "kind": "alarm", "cron": "61 * * * *"}]}, "triggers[0].cron", "not a valid cron"),
        ({"triggers": [{"name": "t", "kind": "alarm", "cron": "* * *"}]}, "triggers[0].cron", "3 fields"),
        ({"triggers": [{"name": "t", "kind": "alarm", "cron": "0 0 30 2 *"}]}, "triggers[0].cron", "never fires"),
        ({"triggers": [{"name": "t", "kind": "alarm"}]}, "triggers[0].cron", "exactly one of"),
        (
            {"triggers": [{"name": "t", "kind": "alarm", "cron": "* * * * *", "timezone": "Mars/Base"}]},
            "triggers[0].timezone",
            "unknown timezone",
        ),
        ({"triggers": [{"name": "t", "kind": "alarm", "once": "tomorrow"}]}, "triggers[0].once", "ISO 8601"),
        ({"triggers": [{"name": "t", "kind": "object_write", "cron": "* * * * *"}]}, "triggers[0].cron", "only alarm"),
        ({"triggers": [{"name": "t", "kind": "webhook"}]}, "triggers[0].kind", "not one of"),
        ({"triggers": [{"kind": "alarm", "cron": "* * * * *"}]}, "triggers[0].name", "missing"),
        (
            {"triggers": [{"name": "t", "kind": "object_write"}, {"name": "t", "kind": "object_write"}]},
            "triggers[1].name",
            "duplicate",
        ),
        ({"rules": [{"trigger": "nope", "action": "apply"}]}, "rules[0].trigger", "no trigger named"),
        (
            {"triggers": [{"name": "t", "kind": "object_write"}], "rules": [{"trigger": "t", "action": "explode"}]},
            "rules[0].action",
            "not one of",
        ),
        ({"storage": {"backend": "ibm_cos"}}, "ibm_cos.api_key", "no credentials"),
        ({"storage": {"backend": "ibm_cos"}, "ibm_cos": {"access_key_id": "AKID"}}, "ibm_cos.secret_access_key", "HMAC"),
        ({"engine": {"backend": "schematics"}}, "schematics.workspace_id", "missing"),
        (
            {
                "engine": {"backend": "schematics"},
                "schematics": {"workspace_id": "w", "url": "ftp://x"},
                "ibm": {"iam_api_key": "k" * 8},
            },
            "schematics.url",
            "http(s) URL",
        ),
        (
            {"storage": {"backend": "aws_s3", "bucket": "b-bucket"}, "aws_s3": {"endpoint": "127.0.0.1:9000"}},
            "aws_s3.endpoint",
            "http(s) URL",
        ),
        (
            {
                "storage": {"backend": "ibm_cos", "bucket": "b-bucket"},
                "ibm_cos": {"region": "Mars 1", "access_key_id": "ak", "secret_access_key": "sk"},
            },
            "ibm_cos.region",
            "not a COS location",
        ),
        ({"storage": {"bucket": True}}, "storage.bucket", "boolean"),
    ],
)
def test_bad_config_names_the_field(raw, field, words):
    with pytest.raises(ConfigError) as info:
        validate(raw)
    assert info.value.field == field
    assert field in str(info.value) and words in str(info.value)


def test_caller_dict_is_not_mutated():
    raw = {
        "triggers": [{"name": "t", "kind": "object_write", "suffix": "_SUCCESS.json"}],
        "workspace": {"variables": {"gpu_model": "L4"}},
    }
    snapshot = repr(raw)
    config = validate(raw)
    assert repr(raw) == snapshot
    assert config.triggers[0].suffix == ["_SUCCESS.json"]
    config.workspace.variables["gpu_model"] = "A100"
    assert raw["workspace"]["variables"]["gpu_model"] == "L4"


def test_durations_and_cron_forms():
    config = validate(
        {
            "timeouts": {"hard": "2h", "soft": "90s", "apply": 300, "action": "1.5m"},
            "triggers": [
                {"name": "a", "kind": "alarm", "cron": "*/5 * * * * *", "timezone": "Europe/Madrid"},
                {"name": "b", "kind": "alarm", "cron": "0 2 * * 1-5"},
            ],
        }
    )
    assert config.timeouts.hard == 7200 and config.timeouts.soft == 90 and config.timeouts.action == 90
    assert config.triggers[0].schedule.tz.key == "Europe/Madrid"


def test_secrets_masked_in_to_dict():
    config = validate(
        {
            "storage": {"backend": "aws_s3", "bucket": "bkt"},
            "aws_s3": {"access_key_id": "AKIDSECRET1", "secret_access_key": "verysecretvalue"},
        }
    )
    shown = repr(config.to_dict())
    assert "verysecretvalue" not in shown and "AKIDSECRET1" not in shown and REDACTED in shown
    assert set(config.secret_values()) == {"AKIDSECRET1", "verysecretvalue"}


def test_file_lookup_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EPHEMERA_CONFIG_FILE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "userhome"))
    assert load_config().source == "<defaults>"
    (tmp_path / "userhome" / ".ephemera").mkdir(parents=True)
    (tmp_path / "userhome" / ".ephemera" / "config").write_text("storage: {bucket: from-home}\n")
    assert load_config().storage.bucket == "from-home"
    (tmp_path / ".ephemera.yaml").write_text("storage: {bucket: from-cwd}\n")
    assert load_config().storage.bucket == "from-cwd"
    env_file = tmp_path / "env.yaml"
    env_file.write_text("storage: {bucket: from-env}\n")
    monkeypatch.setenv("EPHEMERA_CONFIG_FILE", str(env_file))
    assert load_config().storage.bucket == "from-env"
    monkeypatch.setenv("EPHEMERA_CONFIG_FILE", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="EPHEMERA_CONFIG_FILE"):
        load_config()


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("storage:\n  bucket: [unclosed\n")
    with pytest.raises(ConfigError, match="line"):
        load_config(path)


def test_a_bad_bucket_name_states_its_fix_once():
    with pytest.raises(ConfigError) as info:
        validate({"storage": {"bucket": "Bad_Bucket"}})
    message = str(info.value)
    assert message.count("3-63 lowercase") == 1, message
    assert message.startswith("config key 'storage.bucket': bucket name 'Bad_Bucket' is invalid; use 3-63")


@pytest.mark.parametrize("name", ["Nightly", "a.b", "-lead", "x" * 64, "ws/1"])
def test_workspace_names_are_one_safe_form(name):
    with pytest.raises(ConfigError) as info:
        validate({"workspace": {"name": name}})
    assert info.value.field == "workspace.name" and "lowercase" in str(info.value)


@pytest.mark.parametrize("count", [0, -1, "2", True, 1.5])
def test_worker_count_is_checked_with_the_config(count):
    with pytest.raises(ConfigError) as info:
        validate({"workspace": {"variables": {"worker_count": count}}})
    assert info.value.field == "workspace.variables.worker_count"


def test_every_config_problem_is_reported_at_once(tmp_path):
    """F23: a config with four mistakes says all four, unknown keys first, each with its fix."""
    from ephemera.errors import ConfigErrors

    path = tmp_path / "c.yaml"
    path.write_text("storage: {bucket: Bad_Name, bogus: 1}\ntimeouts: {hard: forever}\nworkload: {entry: nocolon}\n")
    with pytest.raises(ConfigErrors) as info:
        load_config(str(path))
    lines = info.value.message.splitlines()
    assert lines[0] == "4 problems:" and info.value.field == "storage.bogus"
    assert lines[1].startswith("  - config key 'storage.bogus': unknown key; known keys are:")
    assert {line.split("'")[1] for line in lines[1:]} == {"storage.bogus", "storage.bucket", "timeouts.hard", "workload.entry"}


@pytest.mark.parametrize(
    "text, reason",
    [
        ("workspace:\n  name: x\n   stack: local\n", "mapping values are not allowed here at line 3, column 9"),
        (
            "workload: {entry: a:b\n",
            "expected ',' or '}', but got '<stream end>' at line 2, column 1 (while parsing a flow mapping at line 1)",
        ),
    ],
)
def test_a_yaml_error_says_the_parsers_reason_and_names_the_file(tmp_path, text, reason):
    """F22: the parser's reason and place, and the file called a file (not a config key)."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert info.value.message == f"config file '{path}': is not valid YAML: {reason}; fix the syntax there"


def test_an_environment_variable_naming_no_file_is_called_that(monkeypatch, tmp_path):
    monkeypatch.setenv("EPHEMERA_CONFIG_FILE", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError) as info:
        load_config()
    assert info.value.message.startswith(f"config file '{tmp_path / 'nope.yaml'}': is not a file (named by EPHEMERA_CONFIG_FILE)")
