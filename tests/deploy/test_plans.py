"""The deploy plans of Apache OpenWhisk (functions-create.sh) and Code Engine, from configs.

Platform facts the plans are checked against:

- OpenWhisk: rules carry no parameters (WhiskRule has namespace, name, trigger, action,
  version, publish, annotations); trigger params sit under a fire's payload; ``--web
  false`` deletes the web-export annotations; ``final`` "makes all of the action
  parameters that are already defined immutable ... once the parameter has a value
  defined through its enclosing package or the action definition" (docs/annotations.md;
  the controller answers 400 "parameters not allowed" to an invoke that names one); ``-t/--timeout`` is in milliseconds, stock
  range [100 ms, 300000 ms]; ``/whisk.system/cos/changes`` exists only on IBM Cloud
  Functions; the alarms feed takes ``cron``, ``timezone``, ``startDate``, ``stopDate``
  and ``trigger_payload``, ``/whisk.system/alarms/once`` a ``date``.
- Code Engine: ``--visibility`` "Valid values are public, private, and project ... The
  default value is public"; functions' "Length of runtime | 120 seconds";
  ``sub cron --destination-type`` accepts ``function`` (CLI 1.50.0) and ``job`` (the job
  run gets the data in ``CE_DATA``, ``CE_TYPE=dev.knative.sources.ping``), ``sub cos``
  only ``app`` and ``job``; cron data "Size of data | 4096 bytes", shown by ``sub cron
  get`` to whoever can read the project; Python 3.11's end of life is 31 October 2026.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from ephemera.config import ConfigError
from ephemera.deploy.code_engine import check_runtime, code_engine_plan
from ephemera.deploy.openwhisk import openwhisk_plan
from ephemera.deploy.steps import render
from tests.deploy.conftest import SECRET_VALUES, config_with, flag, values

NOW = datetime.now(timezone.utc).replace(microsecond=0)
YEAR = NOW.year + 1  # dates of the tests' windows: next year's


def utc(text: str) -> str:
    """An ISO time of next year, as the plans write it."""
    return (
        datetime.fromisoformat(text.replace("YEAR", str(YEAR)))
        .astimezone(timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def ow(config, **kw) -> list[list[str]]:
    return [
        s.create for s in openwhisk_plan(config, zip_path="/d/ephemera-action.zip", param_file="/d/params.json", now=NOW, **kw)
    ]


def ce(config, now=NOW, **kw) -> list[list[str]]:
    return [
        s.create for s in code_engine_plan(config, bundle_dir="/d/code-engine", env_file="/d/ephemera-config.env", now=now, **kw)
    ]


def _trigger(cmds, name):
    return next(c for c in cmds if c[1:4] == ["trigger", "create", name])


def test_openwhisk_actions_are_zip_actions_with_explicit_limits_and_not_web_actions():
    cmds = ow(config_with())
    assert cmds[0] == ["wsk", "package", "update", "ephemera", "--param-file", "/d/params.json"]
    for action in ("apply", "destroy", "reap", "status"):
        assert [
            "wsk",
            "action",
            "update",
            f"ephemera/{action}",
            "/d/ephemera-action.zip",
            "--kind",
            "python:3.11",
            "--main",
            "main",
            "--timeout",
            "300000",
            "--memory",
            "256",
            "--web",
            "false",
            "--annotation",
            "final",
            "true",
        ] in cmds
    actions = [c for c in cmds if c[1:3] == ["action", "update"]]
    assert len(actions) == 4 and not any("web-export" in c or c[c.index("--web") + 1] != "false" for c in actions)
    text = "\n".join(render(openwhisk_plan(config_with(), zip_path="z", param_file="p", now=NOW)))
    for secret in SECRET_VALUES:
        assert secret not in text


def test_openwhisk_alarm_cron_is_translated_and_carries_the_rule_params():
    triggers = [
        {
            "name": "nightly",
            "kind": "alarm",
            "cron": "0 2 * 1-3,12 1-5",
            "timezone": "Europe/Madrid",
            "start_date": f"{YEAR}-07-01T00:00:00",
            "stop_date": f"{YEAR}-12-31T00:00:00+00:00",
            "payload": {"params": {"folds": 2}},
        }
    ]
    rules = [{"trigger": "nightly", "action": "apply", "params": {"params": {"folds": 9}, "note": "from the rule"}}]
    nightly = _trigger(ow(config_with(triggers=triggers, rules=rules)), "nightly")
    assert flag(nightly, "--feed") == "/whisk.system/alarms/alarm"
    params = values(nightly, "--param")
    assert params["cron"] == "0 2 * jan-mar,dec 1-5"  # months 0-11 in the feed: names say which
    assert params["timezone"] == "Europe/Madrid"
    assert params["startDate"] == f"{YEAR}-06-30T22:00:00.000Z"  # no offset: read in the trigger's zone, sent in UTC
    assert params["stopDate"] == f"{YEAR}-12-31T00:00:00.000Z"
    payload = json.loads(params["trigger_payload"])
    assert payload == {"ephemera_kind": "alarm", "ephemera_trigger": "nightly", "params": {"folds": 2}, "note": "from the rule"}


def test_openwhisk_two_rules_on_one_trigger_get_a_trigger_each_with_their_params():
    """Rules carry no params, so each rule's params ride on a platform trigger of its own."""
    triggers = [{"name": "nightly", "kind": "alarm", "cron": "0 2 * * *"}]
    rules = [
        {"name": "small", "trigger": "nightly", "action": "apply", "params": {"workspace": "small"}},
        {"name": "big", "trigger": "nightly", "action": "apply", "params": {"workspace": "big"}},
    ]
    cmds = ow(config_with(triggers=triggers, rules=rules, engine={"backend": "schematics"}))
    for name in ("small", "big"):
        assert json.loads(values(_trigger(cmds, name), "--param")["trigger_payload"])["workspace"] == name
        assert ["wsk", "rule", "update", name, name, "ephemera/apply"] in cmds


def test_openwhisk_object_writes_are_a_marker_scan_on_apache_openwhisk():
    cmds = ow(config_with())
    done = _trigger(cmds, "done")
    assert flag(done, "--feed") == "/whisk.system/alarms/alarm"
    params = values(done, "--param")
    assert params["cron"] == "* * * * *" and params["timezone"] == "UTC"
    assert json.loads(params["trigger_payload"])["ephemera_scan"] == {
        "bucket": "ephemera-state",
        "prefix": "outputs/",
        "suffix": ["_SUCCESS.json", "_FAILURE.json"],
    }
    assert ["wsk", "rule", "update", "done-destroy", "done", "ephemera/destroy"] in cmds
    assert not any("/whisk.system/cos/changes" in c for c in cmds)
    assert ["wsk", "rule", "update", "ephemera-reaper-reap", "ephemera-reaper", "ephemera/reap"] in cmds


def test_openwhisk_scan_serves_destroy_rules_only():
    rules = [{"trigger": "nightly", "action": "apply"}, {"trigger": "done", "action": "apply"}]
    with pytest.raises(ConfigError) as info:
        ow(config_with(rules=rules))
    assert info.value.field == "rules[1].action" and "object_writes: cos_feed" in str(info.value)


def test_cos_feed_mode_for_ibm_cloud_functions(tmp_path):
    """/whisk.system/cos/changes: feed params with --feed-param, the params with --trigger-param
    (plain -p would go to the feed only); it watches IBM COS, nothing else."""
    rules = [{"trigger": "nightly", "action": "apply"}, {"trigger": "done", "action": "destroy", "params": {"note": "x"}}]
    config = config_with(openwhisk={"object_writes": "cos_feed"}, rules=rules)
    cmds = ow(config, cli=("ibmcloud", "fn"))
    done1 = next(c for c in cmds if c[2:5] == ["trigger", "create", "done-1"])
    done2 = next(c for c in cmds if c[2:5] == ["trigger", "create", "done-2"])
    feed = values(done1, "--feed-param")
    assert flag(done1, "--feed") == "/whisk.system/cos/changes"
    assert feed == {
        "bucket": "ephemera-state",
        "endpoint": "s3.private.us-south.cloud-object-storage.appdomain.cloud",
        "event_types": "write",
        "prefix": "outputs/",
        "suffix": "_SUCCESS.json",
    }
    assert values(done1, "--trigger-param") == {"ephemera_trigger": '"done"', "note": '"x"'}
    assert values(done2, "--feed-param")["suffix"] == "_FAILURE.json"
    assert "--param" not in done1
    local = {"storage": {"backend": "localhost", "bucket": "ephemera-state"}, "home": str(tmp_path)}
    with pytest.raises(ConfigError) as info:
        ow(config_with(**local, engine={"backend": "schematics"}, openwhisk={"object_writes": "cos_feed"}, rules=rules))
    assert info.value.field == "triggers[1]" and "localhost" in str(info.value)


def test_engines_that_keep_state_on_the_host_are_refused():
    config = config_with(engine={"backend": "terraform"})
    for plan in (ow, ce):
        with pytest.raises(ConfigError) as info:
            plan(config)
        assert info.value.field == "engine.backend" and "terraform" in str(info.value)


def test_a_setting_naming_a_local_file_is_refused_at_deploy(tmp_path):
    """A deployed action cannot read the operator's files: notify.smtp_ca_file is refused
    by name (it is checked and made absolute at load for local use)."""
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    config = config_with(notify={"smtp_ca_file": str(ca)})
    assert config.notify.smtp_ca_file == str(ca)
    for plan in (
        lambda: openwhisk_plan(config, zip_path="z.zip", param_file="p.json"),
        lambda: code_engine_plan(config, bundle_dir="b", env_file="e.env"),
    ):
        with pytest.raises(ConfigError) as err:
            plan()
        assert err.value.field == "notify.smtp_ca_file"
    with pytest.raises(ConfigError) as missing:
        config_with(notify={"smtp_ca_file": str(tmp_path / "nowhere.pem")})
    assert missing.value.field == "notify.smtp_ca_file"


def test_time_limits_fit_the_platform_and_timeouts_action():
    with pytest.raises(ConfigError) as info:
        config_with(code_engine={"function_timeout": "5m"})
    assert info.value.field == "code_engine.function_timeout" and "120s" in str(info.value)
    with pytest.raises(ConfigError) as info:
        config_with(openwhisk={"timeout": "10m"})
    assert info.value.field == "openwhisk.timeout" and "300s" in str(info.value)
    raised = config_with(openwhisk={"timeout": "10m", "max_timeout": "15m"}, timeouts={"action": "10m"})
    assert "600000" in next(c for c in ow(raised) if c[1:3] == ["action", "update"])
    with pytest.raises(ConfigError) as info:
        ce(config_with(timeouts={"action": "60s"}))
    assert info.value.field == "code_engine.function_timeout" and "timeouts.action" in str(info.value)


def test_code_engine_functions_are_private_current_and_time_limited():
    cmds = ce(config_with())
    fns = {c[5]: c for c in cmds if c[2:4] == ["fn", "create"]}
    assert set(fns) == {"ephemera-apply", "ephemera-reap", "ephemera-status"}
    for name, fn in fns.items():
        assert flag(fn, "--visibility") == "private" and flag(fn, "--runtime") == "python-3.13"
        assert flag(fn, "--maxexecutiontime") == "120"
        envs = [fn[i + 1] for i, w in enumerate(fn) if w == "--env"]
        assert f"EPHEMERA_ACTION={name.removeprefix('ephemera-')}" in envs and "EPHEMERA_ACTION_TIMEOUT=120" in envs
    job = next(c for c in cmds if c[2:4] == ["job", "create"])
    assert flag(job, "--maxexecutiontime") == "600" and flag(job, "--retrylimit") == "3"
    other = ce(config_with(code_engine={"visibility": "project"}))
    assert flag(next(c for c in other if c[2:4] == ["fn", "create"]), "--visibility") == "project"
    with pytest.raises(ConfigError):
        config_with(code_engine={"visibility": "public"})


def test_code_engine_runtime_lifecycle():
    assert check_runtime("python-3.13", datetime(2026, 6, 1).date()) is None
    assert "deprecated" in check_runtime("python-3.11", datetime(2026, 6, 1).date())
    with pytest.raises(ConfigError) as info:
        check_runtime("python-3.11", datetime(2026, 11, 1).date())
    assert info.value.field == "code_engine.runtime" and "end of life" in str(info.value)


def test_code_engine_cron_subscription_is_five_fields_with_its_window_and_params():
    triggers = [
        {
            "name": "nightly",
            "kind": "alarm",
            "cron": "0 2 * 1-3,12 1-5 0",
            "timezone": "Europe/Madrid",
            "start_date": f"{YEAR}-07-01T00:00:00",
            "stop_date": f"{YEAR}-12-31T00:00:00Z",
            "payload": {"params": {"folds": 2}},
        },
        {"name": "done", "kind": "object_write", "prefix": "outputs/", "suffix": ["_SUCCESS.json", "_FAILURE.json"]},
    ]
    rules = [
        {"trigger": "nightly", "action": "apply", "params": {"note": "rule"}},
        {"trigger": "done", "action": "destroy", "params": {"note": "writes"}},
    ]
    cmds = ce(config_with(triggers=triggers, rules=rules))
    sub = next(c for c in cmds if c[2:5] == ["sub", "cron", "create"] and flag(c, "--name") == "nightly-apply")
    assert flag(sub, "--schedule") == "0 2 * 1-3,12 1-5" and flag(sub, "--time-zone") == "Europe/Madrid"
    assert flag(sub, "--destination") == "ephemera-apply-job" and flag(sub, "--destination-type") == "job"
    apply_job = next(c for c in cmds if c[2:4] == ["job", "create"] and flag(c, "--name") == "ephemera-apply-job")
    assert "EPHEMERA_ACTION=apply" in apply_job
    data = json.loads(flag(sub, "--data"))
    assert data == {
        "ephemera_kind": "alarm",
        "ephemera_trigger": "nightly",
        "params": {"folds": 2},
        "note": "rule",
        "ephemera_not_before": f"{YEAR}-06-30T22:00:00.000Z",
        "ephemera_not_after": f"{YEAR}-12-31T00:00:00.000Z",
    }
    # a COS event carries no params: the rule with params gets a job of its own that does
    job = next(c for c in cmds if c[2:4] == ["job", "create"] and flag(c, "--name") == "ephemera-done-destroy-job")
    assert 'EPHEMERA_RULE_PARAMS={"note":"writes"}' in job
    cos = [c for c in cmds if c[2:5] == ["sub", "cos", "create"]]
    assert [flag(c, "--destination") for c in cos] == ["ephemera-done-destroy-job"] * 2
    assert [flag(c, "--suffix") for c in cos] == ["_SUCCESS.json", "_FAILURE.json"]
    assert all(flag(c, "--destination-type") == "job" for c in cos)


@pytest.mark.parametrize(
    "trigger, field, words",
    [
        ({"cron": "*/30 * * * * *"}, "triggers[0].cron", "5 fields"),
        ({"cron": None, "once": f"{YEAR}-07-01T00:00:00Z"}, "triggers[0].once", "cannot fire once"),
        ({"cron": "0 0 L * *"}, "triggers[0].cron", "day form"),
        ({"cron": "0 2 * * *", "stop_date": f"{YEAR}-01-01T00:00:00Z"}, "triggers[0].stop_date", "has passed"),
    ],
)
def test_code_engine_refuses_what_a_cron_subscription_cannot_express(trigger, field, words):
    base = {"name": "t", "kind": "alarm", "cron": "0 2 * * *"}
    config = config_with(triggers=[{**base, **trigger}], rules=[{"trigger": "t", "action": "apply"}])
    with pytest.raises(ConfigError) as info:
        ce(config, now=datetime(YEAR, 1, 15, tzinfo=timezone.utc))  # the config was valid when written; a deploy comes later
    assert info.value.field == field and words in str(info.value)


def test_code_engine_cron_data_is_limited_to_4096_bytes():
    trig = {"name": "t", "kind": "alarm", "cron": "0 2 * * *", "payload": {"blob": "x" * 5000}}
    with pytest.raises(ConfigError) as info:
        ce(config_with(triggers=[trig], rules=[{"trigger": "t", "action": "apply"}]))
    assert info.value.field == "triggers[0].payload" and "4096" in str(info.value)


def test_duplicate_rule_names_are_refused():
    rules = [{"name": "r", "trigger": "nightly", "action": "apply"}, {"name": "r", "trigger": "done", "action": "destroy"}]
    with pytest.raises(ConfigError) as info:
        config_with(rules=rules)
    assert info.value.field == "rules[1].name"


def test_code_engine_cron_subscriptions_start_jobs_and_carry_no_credential():
    """A cron subscription's data is readable by anyone who can read the project's
    subscriptions: every cron (the rules' and the reaper's) starts a job, never a function,
    and its data holds neither a config secret nor the invoke token."""
    cmds = ce(config_with())
    crons = [c for c in cmds if c[2:5] == ["sub", "cron", "create"]]
    assert crons and all(flag(c, "--destination-type") == "job" for c in crons)
    jobs = {flag(c, "--name") for c in cmds if c[2:4] == ["job", "create"]}
    assert {flag(c, "--destination") for c in crons} <= jobs and "ephemera-reap-job" in jobs
    for c in crons:
        data = flag(c, "--data")
        assert "token" not in data.lower() and not any(secret in data for secret in SECRET_VALUES)


def test_code_engine_functions_need_the_invoke_secret_made_from_a_file():
    """The invoke token is a Code Engine secret created from an env file, bound to the
    functions (which refuse requests without it) and to no job; no command carries it."""
    steps = code_engine_plan(config_with(), bundle_dir="/d/code-engine", env_file="/d/ephemera-config.env", now=NOW)
    secret = next(s for s in steps if s.create[2:4] == ["secret", "create"] and "ephemera-invoke" in s.create)
    assert secret.create[-2:] == ["--from-env-file", "/d/ephemera-invoke.env"] and secret.update[-2:] == secret.create[-2:]
    assert secret.probe == ["ibmcloud", "ce", "secret", "get", "--name", "ephemera-invoke"]
    for step in steps:
        if step.create[2:4] == ["fn", "create"]:
            assert ["--env-from-secret", "ephemera-invoke"] == step.create[-2:]
        if step.create[2:4] == ["job", "create"]:
            assert "ephemera-invoke" not in step.create
    text = "\n".join(render(steps))
    assert "EPHEMERA_INVOKE_TOKEN" not in text and "Bearer" not in text


def test_code_engine_object_write_job_carries_the_trigger_payload():
    """F5: an object-write trigger's payload reaches the action, as an alarm's does (rule
    params < trigger payload); a COS event carries neither, so the job's env does."""
    triggers = [{"name": "inbox", "kind": "object_write", "prefix": "in/", "payload": {"params": {"mode": "fast"}}}]
    rules = [{"trigger": "inbox", "action": "apply", "params": {"note": "rule", "params": {"mode": "slow"}}}]
    cmds = ce(config_with(triggers=triggers, rules=rules))
    job = next(c for c in cmds if c[2:4] == ["job", "create"] and flag(c, "--name").startswith("ephemera-inbox-apply"))
    env = next(word for word in job if word.startswith("EPHEMERA_RULE_PARAMS="))
    assert json.loads(env.partition("=")[2]) == {"note": "rule", "params": {"mode": "fast"}}


def test_a_deploy_refuses_the_examples_placeholders():
    """F25: the example's ``REPLACE-...`` values are refused before any plan, each named
    by its key (never its value), all at once."""
    import yaml

    from ephemera.assembly import load_config
    from ephemera.errors import ConfigErrors
    from tests.deploy.conftest import REPO

    raw = yaml.safe_load((REPO / "examples" / "ibm-cloud.yaml").read_text())
    with pytest.raises(ConfigErrors) as info:
        ce(load_config(raw))
    fields = {field for field, _ in info.value.problems}
    assert fields == {"ibm_cos.access_key_id", "ibm_cos.secret_access_key", "ibm.iam_api_key"}
    assert "REPLACE-" not in info.value.message and "put your own value here" in info.value.message
