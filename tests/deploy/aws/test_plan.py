"""The plan of ``ephemera deploy aws`` and its IAM documents, from the config.

Facts: Lambda "Function timeout: 900 seconds"; a function has no URL unless one is
created (``create-function-url-config``); S3 invokes a function through the function's
resource policy (``add-permission --principal s3.amazonaws.com --source-arn
arn:aws:s3:::bucket --source-account``); EventBridge Scheduler assumes an execution role
"scheduler.amazonaws.com" whose trust should carry "aws:SourceAccount"; secret ARNs end
in "-" and six random characters; S3 refuses notification configurations whose
prefix/suffix filters overlap for one event type.
"""

from __future__ import annotations

import json

import pytest

from ephemera.assembly import load_config
from ephemera.deploy.aws.plan import aws_plan
from ephemera.deploy.aws.policies import overlapping
from ephemera.deploy.steps import render
from ephemera.errors import ConfigError
from tests.deploy.conftest import SECRET_VALUES, commands, example, flag

ACCOUNT = "210987654321"


def aws_example(**sections) -> dict:
    """The example config on AWS S3 (the functions' own role reaches it) with the Schematics engine."""
    data = example()
    data["storage"] = {"backend": "aws_s3", "bucket": "ephemera-state"}
    data["aws_s3"] = {"region": "eu-west-1", "vm_role_arn": f"arn:aws:iam::{ACCOUNT}:role/ephemera-vm"}
    data["aws_lambda"] = {"account_id": ACCOUNT, "region": "eu-west-1"}
    for name, value in sections.items():
        data[name] = {**data.get(name, {}), **value} if isinstance(value, dict) else value
    return data


def plan(data: dict, tmp_path):
    return aws_plan(
        load_config(data),
        zip_path="/b/ephemera-lambda.zip",
        secret_file="/s/config.json",
        config_sha256="ab" * 32,
        files_dir=str(tmp_path),
    )


def docs(p, prefix: str) -> dict[str, dict]:
    return {k: json.loads(v) for k, v in p.files.items() if k.startswith(prefix)}


def test_functions_roles_and_who_may_invoke_them(tmp_path):
    p = plan(aws_example(), tmp_path)
    names = {fn.name: (fn.action, fn.entry) for fn in p.functions}
    assert names == {
        "ephemera-apply": ("apply", "direct"),
        "ephemera-destroy": ("destroy", "direct"),
        "ephemera-status": ("status", "direct"),
        "ephemera-reap": ("reap", "direct"),
        "ephemera-apply-events": ("apply", "events"),
        "ephemera-destroy-events": ("destroy", "events"),
        "ephemera-reap-events": ("reap", "events"),
    }
    text = "\n".join(render(p.steps))
    cmds = commands(text)
    assert not any("function-url" in " ".join(c) for c in cmds)  # no function gets a URL
    perms = [c for c in cmds if c[1:3] == ["lambda", "add-permission"]]
    assert {flag(c, "--function-name") for c in perms} == {"ephemera-destroy-events"}  # only S3, only to its function
    for c in perms:
        assert flag(c, "--principal") == "s3.amazonaws.com" and flag(c, "--source-arn") == "arn:aws:s3:::ephemera-state"
        assert flag(c, "--source-account") == ACCOUNT
    created = [c for c in cmds if c[1:3] == ["lambda", "create-function"]]
    assert len(created) == 7
    for c in created:
        assert flag(c, "--handler") == "ephemera.actions.lambda_entry.handler" and flag(c, "--runtime") == "python3.13"
        assert (
            flag(c, "--role") == f"arn:aws:iam::{ACCOUNT}:role/ephemera-fn-{flag(c, '--function-name').removeprefix('ephemera-')}"
        )
        assert int(flag(c, "--timeout")) <= 300
    for secret in SECRET_VALUES:  # the config's secrets: only in the 0600 file the secret is made from
        assert secret not in text and not any(secret in v for v in p.files.values())
    assert "file:///s/config.json" in text
    env = json.loads(p.files["lambda/ephemera-destroy-events-env.json"])["Variables"]
    assert env == {
        "EPHEMERA_ACTION": "destroy",
        "EPHEMERA_ENTRY": "events",
        "EPHEMERA_CONFIG_SECRET": "ephemera-config",
        "EPHEMERA_CONFIG_SHA256": "ab" * 32,
        "EPHEMERA_HOME": "/tmp/ephemera",
    }


def test_each_role_allows_only_what_its_action_needs(tmp_path):
    policies = docs(plan(aws_example(), tmp_path), "iam/ephemera-fn-")
    for name, policy in policies.items():
        statements = policy["Statement"]
        for s in statements:
            actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
            assert s["Effect"] == "Allow" and not any(a == "*" or a.endswith(":*") for a in actions), (name, s)
            assert not any(r == "*" for r in resources), (name, s)
        by_sid = {s["Sid"]: s for s in statements}
        fn = name.removeprefix("iam/ephemera-fn-").removesuffix("-policy.json")
        assert by_sid["OwnLogs"]["Resource"] == [
            f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/lambda/ephemera-{fn}",
            f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/lambda/ephemera-{fn}:*",
        ]
        assert by_sid["Config"]["Resource"] == f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:ephemera-config-??????"
        assert by_sid["StateList"]["Resource"] == ["arn:aws:s3:::ephemera-state"]
        writes = "s3:PutObject" in by_sid["StateObjects"]["Action"]
        assert writes == (not fn.startswith("status"))  # status only reads
        assert ("MintVMKeys" in by_sid) == fn.startswith("apply")  # only apply mints VM keys
        if "MintVMKeys" in by_sid:
            assert by_sid["MintVMKeys"]["Resource"] == f"arn:aws:iam::{ACCOUNT}:role/ephemera-vm"


def test_storage_keys_in_the_config_leave_the_roles_without_s3_rights(tmp_path):
    data = aws_example(aws_s3={"access_key_id": "AKEYID-test-0001", "secret_access_key": "a-secret-of-the-test"})
    p = plan(data, tmp_path)
    for policy in docs(p, "iam/ephemera-fn-").values():
        assert not any(s["Sid"].startswith("State") for s in policy["Statement"])
    assert not any("a-secret-of-the-test" in v for v in p.files.values())


def test_schedules_target_events_functions_through_a_role_only_the_scheduler_of_this_account_assumes(tmp_path):
    p = plan(aws_example(), tmp_path)
    trust = json.loads(p.files["iam/scheduler-trust.json"])["Statement"][0]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    invoke = json.loads(p.files["iam/ephemera-scheduler-policy.json"])["Statement"]
    assert [s["Action"] for s in invoke] == ["lambda:InvokeFunction"]
    assert {r.rsplit(":", 1)[0] if r.endswith(":*") else r for r in invoke[0]["Resource"]} == {
        f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:ephemera-apply-events",
        f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:ephemera-reap-events",
    }
    nightly = json.loads(p.files["scheduler/nightly-apply-target.json"])
    data = json.loads(nightly["Input"])
    assert data["ephemera_kind"] == "alarm" and data["ephemera_trigger"] == "nightly"
    assert data["ephemera_time"] == "<aws.scheduler.scheduled-time>"
    cmds = commands("\n".join(render(p.steps)))
    create = next(c for c in cmds if c[1:3] == ["scheduler", "create-schedule"] and "nightly-apply" in c)
    assert (
        flag(create, "--schedule-expression") == "cron(0 2 * * ? *)"
        and flag(create, "--schedule-expression-timezone") == "Europe/Madrid"
    )
    reaper = next(c for c in cmds if c[1:3] == ["scheduler", "create-schedule"] and "ephemera-reaper" in c)
    assert flag(reaper, "--schedule-expression") == "cron(0/5 * * * ? *)"


def test_object_write_rules_become_filtered_notifications(tmp_path):
    rules = [
        {"trigger": "nightly", "action": "apply"},
        {"trigger": "done", "action": "destroy"},
        {"name": "inputs", "trigger": "uploads", "action": "apply", "params": {"params": {"folds": 3}}},
    ]
    triggers = example()["triggers"] + [{"name": "uploads", "kind": "object_write", "prefix": "inputs/", "suffix": ".csv"}]
    p = plan(aws_example(triggers=triggers, rules=rules), tmp_path)
    note = json.loads(p.files["s3/ephemera-state-notification.json"])["LambdaFunctionConfigurations"]
    got = {
        (c["LambdaFunctionArn"].rsplit(":", 1)[1], tuple((r["Name"], r["Value"]) for r in c["Filter"]["Key"]["FilterRules"]))
        for c in note
    }
    assert got == {
        ("ephemera-destroy-events", (("prefix", "outputs/"), ("suffix", "_SUCCESS.json"))),
        ("ephemera-destroy-events", (("prefix", "outputs/"), ("suffix", "_FAILURE.json"))),
        ("ephemera-inputs-events", (("prefix", "inputs/"), ("suffix", ".csv"))),
    }
    assert all(c["Events"] == ["s3:ObjectCreated:*"] for c in note)
    env = json.loads(p.files["lambda/ephemera-inputs-events-env.json"])["Variables"]
    assert json.loads(env["EPHEMERA_RULE_PARAMS"]) == {"params": {"folds": 3}}  # an S3 event carries no params: the function does


@pytest.mark.parametrize(
    "change, field, words",
    [
        (
            {"engine": {"backend": "terraform"}, "workspace": {"name": "gpu", "stack": "local"}},
            "engine.backend",
            "keeps its state",
        ),
        ({"aws_lambda": {"account_id": None}}, "aws_lambda.account_id", "missing"),
        ({"aws_lambda": {"timeout": "10m"}}, "aws_lambda.timeout", "timeouts.action"),
        ({"aws_lambda": {"region": "us-east-2"}}, "aws_lambda.region", "bucket's region"),
        ({"storage": {"backend": "ibm_cos"}}, "triggers[1]", "only AWS S3"),
        (
            {
                "triggers": example()["triggers"] + [{"name": "all", "kind": "object_write", "prefix": "out"}],
                "rules": example()["rules"] + [{"trigger": "all", "action": "apply"}],
            },
            "triggers[2].prefix",
            "overlap",
        ),
    ],
)
def test_what_cannot_be_deployed_is_refused_naming_the_key(tmp_path, change, field, words):
    data = aws_example(**change)
    with pytest.raises(ConfigError) as err:
        plan(data, tmp_path)
    assert f"'{field}'" in err.value.message and words in err.value.message, err.value.message


def test_lambda_limits_are_checked_when_the_config_loads():
    with pytest.raises(ConfigError, match="900s"):
        load_config(aws_example(aws_lambda={"timeout": "16m"}, timeouts={"action": "20m"}))
    with pytest.raises(ConfigError, match="account id"):
        load_config(aws_example(aws_lambda={"account_id": "12345"}))


def test_overlap_is_s3s_rule():
    assert overlapping(("outputs/", "_SUCCESS.json"), ("out", ""))
    assert not overlapping(("outputs/", "_SUCCESS.json"), ("outputs/", "_FAILURE.json"))
    assert not overlapping(("inputs/", ".csv"), ("outputs/", ".csv"))


def test_the_iam_documents_are_accepted_by_iam(tmp_path):
    """moto's IAM validates policy documents as IAM does (version, statement shape, actions)."""
    import boto3
    from moto import mock_aws

    p = plan(aws_example(), tmp_path)
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        for name, text in p.files.items():
            if name.endswith("-policy.json"):
                role = name.removeprefix("iam/").removesuffix("-policy.json")
                trust = p.files["iam/scheduler-trust.json" if role.endswith("scheduler") else "iam/lambda-trust.json"]
                iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)
                iam.put_role_policy(RoleName=role, PolicyName="ephemera", PolicyDocument=text)
                iam.create_policy(PolicyName=f"check-{role}", PolicyDocument=text)  # create_policy runs the full validator
        assert len(iam.list_roles()["Roles"]) == 8
