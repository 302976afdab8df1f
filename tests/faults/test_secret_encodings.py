"""Defect 9 of issue 11: a secret with '"', '\\', '/' and '+' in it never leaves in an
encoded form, and a VM receives only the settings it needs.

The run stores on S3 (the local S3 server) with such a secret key. Its workload (own
code, shipped in the bundle) logs its whole agent config as JSON, prints the key
URL-encoded and base64-encoded, then raises with it JSON-escaped. Neither the agent's
log, the failure marker, the run record nor ``ephemera runs show`` holds the key in
any encoding (HTML entities, lower-case and double percent-encoding too, issue 16
finding 9); the agent config holds the storage keys the VM needs and none of the
unrelated ones (``ibm.iam_api_key``, ``ibm_cos`` HMAC keys)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ephemera.actions import apply, destroy
from ephemera.cli.runs import run_details
from ephemera.context import Context
from tests.core.test_scrub_encodings import decodes_to
from tests.faults.test_exactly_once import storage_config
from tests.helpers import live_agents, wait_for

pytestmark = pytest.mark.slow  # a real run on the local S3 server

SECRET = 'zqx7-S3CRET/key+"quoted"\\back'
API_KEY = "iam-apikey-UNUSED-0123456789"
COS_SECRET = "cos-hmac-UNUSED-secret-9876543210"
LEAK = '''
import base64, html, json, logging, re, sys
from urllib.parse import quote, quote_plus

def main(ctx):
    cfg = json.load(open(sys.argv[sys.argv.index("--config") + 1]))
    secret = cfg["config"]["aws_s3"]["secret_access_key"]
    logging.getLogger("leaky").info("my config: %s", json.dumps(cfg))
    print("url", quote(secret), quote_plus(secret), "b64", base64.b64encode(b"k=" + secret.encode()).decode(), flush=True)
    lower = re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote(secret, safe=""))
    print("html", html.escape(secret), "pct", lower, quote(quote(secret, safe=""), safe=""), flush=True)
    raise RuntimeError(json.dumps({"secret": secret, "again": repr(secret)}))
'''


def leaked(text: str) -> bool:
    return any(word in text for word in ("S3CRET", API_KEY, COS_SECRET)) or decodes_to(text, SECRET.encode())


def test_encoded_secret_never_leaks_and_the_vm_gets_only_its_storage(
    local_cfg, home, s3_endpoint, unique_bucket, tmp_path, faults
):
    source = tmp_path / "leaky"
    source.mkdir()
    (source / "leak.py").write_text(LEAK)
    extra = storage_config("aws_s3", s3_endpoint, unique_bucket)
    extra["aws_s3"]["secret_access_key"] = SECRET
    config = local_cfg(
        workload={"entry": "leak:main", "source": str(source)},
        ibm={"iam_api_key": API_KEY},
        ibm_cos={"access_key_id": "cos-hmac-id", "secret_access_key": COS_SECRET},
        **extra,
    )
    ctx = Context(config)
    ctx.storage.create_bucket(unique_bucket)
    run_id = apply.main({"config": config})["run_id"]
    agent_json = wait_for(lambda: next(iter(home.glob(f"runs/{run_id}/vms/0/agent.json")), None), what="agent.json")
    vm_config = json.loads(agent_json.read_text())["config"]
    assert set(vm_config) <= {"storage", "aws_s3", "home"}, vm_config  # only what the VM needs
    assert API_KEY not in agent_json.read_text() and COS_SECRET not in agent_json.read_text()
    faults.inject()
    faults.scenario("secret in every encoding")
    marker_key = f"outputs/{run_id}/_FAILURE.json"
    wait_for(lambda: any(o.key == marker_key for o in ctx.storage.list(unique_bucket, "outputs/")), what="failure marker")
    marker = ctx.storage.get(unique_bucket, marker_key).decode()
    assert "RuntimeError" in marker and not leaked(marker), marker
    result = destroy.main({"config": config, "ephemera_kind": "object_write", "bucket": unique_bucket, "key": marker_key})
    assert result["state"] == "DESTROYED", result
    logs = "".join(p.read_text(errors="replace") for p in home.glob(f"runs/{run_id}/agents/*.log"))
    assert "my config" in logs and "url " in logs and "html " in logs  # the workload did log it all
    record = ctx.storage.get(unique_bucket, f"ephemera/runs/{run_id}.json").decode()
    for what, text in (
        ("agent log", logs),
        ("run record", record),
        ("runs show", run_details(ctx, ctx.ledger.get(run_id))),
        ("result", json.dumps(result)),
    ):
        assert not leaked(text), f"{what} leaks the secret"
    assert not live_agents(Path(home))
