"""The event's object on cloud VMs: a run fired by an object write may read that one
object, and nothing else outside its prefixes.

On S3 a run's VMs hold STS keys whose session policy names only the run's prefixes, so
``ctx.storage.get(ctx.event.bucket, ctx.event.key)`` would be refused on a cloud VM.
The controller adds exactly that key, ``s3:GetObject`` only, to the session policy;
only when a configured object_write trigger bound to ``apply`` watches it, and never
inside Ephemera's own namespace or with an IAM wildcard in its name.

AWS IAM contract facts relied on (IAM User Guide, "IAM JSON policy elements: Resource"
and "Policy evaluation logic"): an S3 object ARN is ``arn:aws:s3:::bucket/key``; in a
Resource ARN ``*`` matches any run of characters and ``?`` any one character, anything
else matches literally; an action not allowed by a session policy is implicitly denied.
moto does not evaluate policies, so :func:`allows` below applies those rules to the
policy the controller sends STS.
"""

from __future__ import annotations

import json
import re

import pytest

from ephemera import layout
from ephemera.assembly import load_config
from ephemera.bundle.inputs import event_inputs
from ephemera.events.formats import parse_event
from ephemera.lifecycle import request_run
from ephemera.context import Context
from ephemera.storage.aws_s3 import sts
from ephemera.storage.spec import RunScope
from tests.faults.helpers import run_variables
from tests.storage.test_vm_credentials import s3_config, sent_to_sts  # noqa: F401  (a fixture)

TRIGGERS = {
    "triggers": [
        {"name": "file-lands", "kind": "object_write", "prefix": "inbox/"},
        {"name": "csv-lands", "kind": "object_write", "bucket": "uploads", "prefix": "in/", "suffix": [".csv"]},
        {"name": "run-done", "kind": "object_write", "prefix": "outputs/", "suffix": ["_SUCCESS.json"]},
        {"name": "nightly", "kind": "alarm", "cron": "0 2 * * *"},
    ],
    "rules": [
        {"trigger": "file-lands", "action": "apply"},
        {"trigger": "csv-lands", "action": "apply"},
        {"trigger": "run-done", "action": "destroy"},
        {"trigger": "nightly", "action": "apply"},
    ],
}


def allows(policy: dict, action: str, arn: str) -> bool:
    """Whether ``policy`` allows ``action`` on ``arn`` (Allow statements only: the session
    policies hold no Deny; wildcards as IAM matches them)."""

    def matches(pattern: str, value: str) -> bool:
        regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
        return re.fullmatch(regex, value, re.S) is not None

    return any(
        s["Effect"] == "Allow" and "Condition" not in s and action in s["Action"] and any(matches(r, arn) for r in s["Resource"])
        for s in policy["Statement"]
    )


def _write(bucket: str, key: str, trigger: str = "file-lands") -> dict:
    return {"kind": "object_write", "bucket": bucket, "key": key, "trigger": trigger}


def test_the_object_a_trigger_of_an_apply_watches_is_granted(local_config):
    config = load_config(local_config(**TRIGGERS))
    state = config.state_bucket
    assert event_inputs(config, _write(state, "inbox/notes.txt")) == ((state, "inbox/notes.txt"),)
    assert event_inputs(config, _write("uploads", "in/day.csv", "csv-lands")) == (("uploads", "in/day.csv"),)


@pytest.mark.parametrize(
    "event, why",
    [
        ({"kind": "alarm", "trigger": "nightly"}, "an alarm names no object"),
        ({"kind": "manual"}, "no object"),
        (_write("ephemera-test", "elsewhere/notes.txt"), "under no watched prefix"),
        (_write("uploads", "in/day.txt", "csv-lands"), "not one of the trigger's suffixes"),
        (_write("other-bucket", "inbox/notes.txt"), "a bucket no trigger watches"),
        (_write("ephemera-test", "outputs/other-run/_SUCCESS.json", "run-done"), "watched only by a destroy trigger"),
        (_write("ephemera-test", "inbox/*"), "a wildcard would match every key under inbox/"),
        (_write("ephemera-test", "inbox/${aws:username}"), "a policy variable"),
    ],
)
def test_no_other_object_is_granted(local_config, event, why):
    """The attacker here can invoke the apply action with an event of their making
    (``ephemera invoke apply bucket=... key=...``, or a forged delivery): the grant stays
    within what the config's apply triggers watch."""
    assert event_inputs(load_config(local_config(**TRIGGERS)), event) == (), why


def test_ephemeras_own_namespace_is_never_granted(local_config):
    """Even a trigger watching the whole state bucket does not open run records and other
    runs' credentials objects to a run's VMs."""
    raw = local_config(triggers=[{"name": "all", "kind": "object_write"}], rules=[{"trigger": "all", "action": "apply"}])
    config = load_config(raw)
    state = config.state_bucket
    assert event_inputs(config, _write(state, layout.credentials_prefix("other-run") + "0-abc.json", "all")) == ()
    assert event_inputs(config, _write(state, layout.run_key("other-run"), "all")) == ()
    assert event_inputs(config, _write(state, "data/x.bin", "all")) == ((state, "data/x.bin"),)


def test_the_session_policy_grants_exactly_that_keys_get():
    prefixes = layout.run_prefixes("r1", "outputs/r1/", "0" * 64, inputs=(("inbox-bucket", "inbox/a.txt"), ("b", "dir/")))
    policy = sts.session_policy(RunScope("r1", "state", "out", prefixes, 900))
    assert allows(policy, "s3:GetObject", "arn:aws:s3:::inbox-bucket/inbox/a.txt")
    assert not allows(policy, "s3:GetObject", "arn:aws:s3:::inbox-bucket/inbox/b.txt")  # a different key under inbox/
    assert not allows(policy, "s3:GetObject", "arn:aws:s3:::inbox-bucket/inbox/a.txt.bak")
    for action in ("s3:PutObject", "s3:DeleteObject", "s3:ListBucket"):
        assert not allows(policy, action, "arn:aws:s3:::inbox-bucket/inbox/a.txt"), action
    assert allows(policy, "s3:GetObject", "arn:aws:s3:::b/dir/") and not allows(policy, "s3:GetObject", "arn:aws:s3:::b/dir/x")
    assert allows(policy, "s3:GetObject", f"arn:aws:s3:::state/{layout.job_key('r1')}")  # the run's own rights stay


def test_a_run_fired_by_a_write_sends_sts_that_one_key(local_config, s3_endpoint, unique_bucket, sent_to_sts):  # noqa: F811
    """What the controller really asks STS for: the run's policy plus the event's object,
    and a write under the same prefix that did not fire the run stays out of reach."""
    config = s3_config(local_config, s3_endpoint, unique_bucket)
    config.update(TRIGGERS)
    ctx = Context(config)
    ctx.storage.create_bucket(unique_bucket)
    ctx.storage.put(unique_bucket, "inbox/notes.txt", b"hello")
    event = parse_event(
        {
            "ephemera_kind": "object_write",
            "ephemera_trigger": "file-lands",
            "bucket": unique_bucket,
            "key": "inbox/notes.txt",
            "etag": "5d41402abc4b2a76b9719d911017c592",
            "size": 5,
        }
    )
    run = request_run(ctx, event).run
    run_variables(ctx, run)
    policies = [json.loads(params["Policy"]) for name, params in sent_to_sts if name == "GetFederationToken"]
    run_policies = [p for p in policies if any(s["Sid"] == "ReadRun" for s in p["Statement"])]
    assert len(policies) == 2 and len(run_policies) == 1  # the boot session's, and the run's
    boot = next(p for p in policies if p not in run_policies)
    assert not allows(boot, "s3:GetObject", f"arn:aws:s3:::{unique_bucket}/inbox/notes.txt")  # not the boot session's
    policy = run_policies[0]
    assert allows(policy, "s3:GetObject", f"arn:aws:s3:::{unique_bucket}/inbox/notes.txt")
    assert not allows(policy, "s3:GetObject", f"arn:aws:s3:::{unique_bucket}/inbox/other.txt")
    assert not allows(policy, "s3:PutObject", f"arn:aws:s3:::{unique_bucket}/inbox/notes.txt")
    assert [s["Resource"] for s in policy["Statement"] if s["Sid"] == "ReadEvent"] == [
        [f"arn:aws:s3:::{unique_bucket}/inbox/notes.txt"]
    ]
