"""VM identity without secrets: the trusted-profile path against a fake VPC metadata
service and a local S3 endpoint, and a Schematics apply whose variable payloads,
rendered user_data and Terraform state hold no secret value."""

from __future__ import annotations

import base64
import gzip
import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ephemera.context import Context
from ephemera.assembly import get_storage
from ephemera.storage.ibm_cos.backend import IBMCOSStorage
from tests.fakes.metadata_server import start_metadata_server
from tests.fakes.s3_server import start_s3_server
from tests.ibm.conftest import CLAIM_SETTLE, HMAC_ID, HMAC_SECRET, SECRETS
from tests.ibm.tfmodule import apply_module

PROFILE = "Profile-8dd84246-7df4-4667-94e4-8cecde51f3a1"
BOOTSTRAP = Path(__file__).resolve().parents[2] / "ephemera" / "vm" / "bootstrap.py"
actions_apply = pytest.importorskip("ephemera.actions.apply")


@pytest.fixture
def metadata():
    server = start_metadata_server(PROFILE)
    yield server
    server.stop()


@pytest.fixture
def recorded_s3():
    log: list = []
    url, stop = start_s3_server(request_log=log)
    yield url, log
    stop()


def test_the_vm_cos_client_authenticates_as_the_trusted_profile(metadata, recorded_s3, unique_bucket):
    """VPC metadata API 2025-08-26: PUT /identity/v1/token (header Metadata-Flavor: ibm)
    gives an instance identity token; POST /identity/v1/iam_tokens with it as a bearer
    token and {"trusted_profile": {"id": ...}} gives the profile's IAM token, which COS
    takes as ``Authorization: Bearer`` (ibm_boto3 with ``auth_function``, oauth signing)."""
    url, s3_log = recorded_s3
    vm_config = {
        "storage": {"backend": "ibm_cos", "bucket": unique_bucket},
        "ibm_cos": {"endpoint": url, "trusted_profile_id": PROFILE, "metadata_url": metadata.url},
    }
    storage = get_storage(vm_config)
    assert isinstance(storage, IBMCOSStorage) and storage.settings.auth == "trusted_profile"
    assert storage.presign(unique_bucket, "k") is None  # no HMAC keys, no presigned URL: the VM uses its identity
    storage.create_bucket(unique_bucket)
    storage.put(unique_bucket, "out/a.txt", b"from the VM")
    assert storage.get(unique_bucket, "out/a.txt") == b"from the VM"
    assert [o.key for o in storage.list(unique_bucket, "out/")] == ["out/a.txt"]

    calls = [(m, p) for m, p, _h, _b in metadata.requests]
    assert ("PUT", "/identity/v1/token") in calls and ("POST", "/identity/v1/iam_tokens") in calls
    asked = [b for m, p, _h, b in metadata.requests if p == "/identity/v1/iam_tokens"]
    assert all(b == {"trusted_profile": {"id": PROFILE}} for b in asked)
    issued = {f"Bearer {t}" for t in metadata.iam_tokens}
    assert s3_log and all(r.headers.get("Authorization") in issued for r in s3_log)


def _load_rendered_bootstrap(user_data: dict, tmp_path: Path):
    files = {f["path"]: f for f in user_data["write_files"]}
    entry = files["/usr/local/lib/ephemera/bootstrap.py"]
    assert entry["encoding"] == "gz+b64" and entry["permissions"] == "0755"
    source = gzip.decompress(base64.b64decode(entry["content"]))
    assert source == BOOTSTRAP.read_bytes(), "the VM runs the controller's own bootstrap"
    path = tmp_path / "bootstrap_rendered.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("bootstrap_rendered", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_schematics_apply_holds_no_secret_and_its_user_data_boots(
    ibm_config, schematics, metadata, recorded_s3, unique_bucket, tmp_path
):
    """Everything Terraform sees -- the Schematics variable payloads, the rendered
    user_data (cloud-init ``write_files`` entries with ``encoding: b64`` / ``gz+b64`` and
    string ``permissions``; at most 64 KB, the VPC user-data limit) and the state of the
    render -- holds no secret; the rendered bootstrap fetches the bundle as the VM's
    trusted profile and checks its SHA-256."""
    url, _log = recorded_s3
    cfg = {
        **ibm_config,
        "home": str(tmp_path / "home"),
        "storage": {"backend": "ibm_cos", "bucket": unique_bucket},
        "ibm_cos": {
            "endpoint": url,
            "access_key_id": HMAC_ID,
            "secret_access_key": HMAC_SECRET,
            "trusted_profile_id": PROFILE,
            "metadata_url": metadata.url,
            "claim_settle": CLAIM_SETTLE,
        },
        "workspace": {"name": "gpu", "stack": "ibm-vpc-gpu", "variables": {"worker_count": 1, "profile": "gx3-16x80x1l4"}},
    }
    get_storage(cfg).create_bucket(unique_bucket)
    applied = actions_apply.main({"config": cfg, "ephemera_kind": "manual"})
    assert "error" not in applied, applied
    payloads = [c.body for c in schematics.calls("PUT", "/values")]
    store = {v["name"]: v for v in payloads[0]["variablestore"]}
    # the boot documents carry the run's key: the only secure variable, never shown again by Schematics
    assert store["trusted_profile_id"]["value"] == PROFILE and [n for n, v in store.items() if v["secure"]] == ["vm_boot"]
    assert store["vm_boot"]["type"] == "list(string)"

    outputs, state = apply_module(
        "user-data",
        {
            "worker": 0,
            "run_id": applied["run_id"],
            "vm_boot": json.loads(store["vm_boot"]["value"])[0],
            "bootstrap_script": store["bootstrap_script"]["value"],
            "profile": "gx3-16x80x1l4",
            "nvidia_driver": "550",
            "custom_image": False,
            "hard_deadline": store["hard_deadline"]["value"],
            "hard_timeout_seconds": 14400,
            "heartbeat_interval": 30,
        },
        tmp_path / "render",
    )
    text = outputs["user_data"]
    assert text.startswith("#cloud-config\n") and len(text.encode()) <= 64 * 1024
    assert outputs["gpu"] == {"count": 1, "model": "L4"}
    record = json.dumps(Context(cfg).ledger.get(applied["run_id"]).to_dict())
    for secret in SECRETS:
        for where, blob in (
            ("variable payloads", json.dumps(payloads)),
            ("user_data", text),
            ("render state", state.read_text()),
            ("run record", record),
            ("apply result", json.dumps(applied)),
        ):
            assert secret not in blob, f"a secret reached the {where}"

    if shutil.which("cloud-init"):
        (tmp_path / "user-data").write_text(text)
        done = subprocess.run(["cloud-init", "schema", "-c", str(tmp_path / "user-data")], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    doc = yaml.safe_load(text)
    files = {f["path"]: f for f in doc["write_files"]}
    boot = json.loads(base64.b64decode(files["/etc/ephemera/boot.json"]["content"]))
    assert boot["identity"]["profile_id"] == PROFILE and boot["bundle"]["url"] is None and boot["credentials"] is None
    assert boot["gpu"] == {"count": 1, "model": "L4"} and boot["setup"] == "/usr/local/sbin/ephemera-setup"
    assert "ephemera-boot.service" in " ".join(map(str, doc["runcmd"][-1]))

    bootstrap = _load_rendered_bootstrap(doc, tmp_path)
    root = tmp_path / "vm"
    root.mkdir()
    bundle = bootstrap.fetch_bundle(root, boot)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["wheel"].startswith("ephemera-") and bundle.name == boot["bundle"]["sha256"]
    assert [p for m, p, _h, _b in metadata.requests].count("/identity/v1/iam_tokens") >= 1


def test_hmac_keys_are_never_handed_to_cloud_vms(ibm_config, schematics, recorded_s3, unique_bucket, tmp_path):
    """Finding 8 of issue 16: without a trusted profile, a controller with HMAC keys used to
    put them (long-lived, instance-wide) in a credentials object for every VM, behind a
    presigned URL in ``vm_boot``. COS cannot mint per-run, scoped, expiring HMAC keys,
    so the apply is refused with the named field and its fix: nothing is created, no
    variable is sent to Schematics, no credentials object is written."""
    url, _log = recorded_s3
    cfg = {
        **ibm_config,
        "home": str(tmp_path / "home"),
        "storage": {"backend": "ibm_cos", "bucket": unique_bucket},
        "ibm_cos": {"endpoint": url, "access_key_id": HMAC_ID, "secret_access_key": HMAC_SECRET, "claim_settle": CLAIM_SETTLE},
        "workspace": {"name": "gpu", "stack": "ibm-vpc-gpu", "variables": {"worker_count": 1}},
    }
    storage = get_storage(cfg)
    storage.create_bucket(unique_bucket)
    applied = actions_apply.main({"config": cfg, "ephemera_kind": "manual"})
    assert applied["state"] == "DESTROYED" and applied["error"]["code"] == "CONFIG_INVALID", applied
    assert "ibm_cos.trusted_profile_id" in applied["error"]["message"] and "trusted profile" in applied["error"]["message"]
    assert not schematics.calls("PUT", "/values") and not schematics.calls("PUT", "/apply")
    assert not list(storage.list(unique_bucket, "ephemera/credentials/"))
    for secret in SECRETS:
        assert secret not in json.dumps(applied)


def test_hmac_keys_may_reach_vms_on_the_controllers_own_machine(recorded_s3, unique_bucket, local_config):
    """VMs of the local stack are processes on the controller's machine (they could read
    its config file anyway): they still get the HMAC keys, through the one-time object."""
    from ephemera.bundle.delivery import prepare_boot
    from ephemera.lifecycle import request_run
    from ephemera.events.formats import parse_event

    url, _log = recorded_s3
    cfg = local_config(
        storage={"backend": "ibm_cos", "bucket": unique_bucket},
        ibm_cos={"endpoint": url, "access_key_id": HMAC_ID, "secret_access_key": HMAC_SECRET},
    )
    ctx = Context(cfg)
    ctx.storage.create_bucket(unique_bucket)
    run = request_run(ctx, parse_event({"idempotency_key": "local-hmac"})).run
    boot = prepare_boot(ctx, run)
    assert boot.documents[0]["credentials"]["url"] and HMAC_SECRET not in json.dumps(boot.variables)
