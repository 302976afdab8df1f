"""Issue 16, finding 3: a VM reads its credentials object first thing at boot, before the
setup script, the driver and the bundle install, into a file only its user can read;
deletes the object at once; and a VM that comes too late for the URL fails with a
clear reason instead of installing anything. Stage two takes the keys from the file
into ``agent.json`` and leaves one copy."""

from __future__ import annotations

import json
import stat

import pytest

from ephemera import layout
from ephemera.context import Context
from ephemera.storage.localhost.config import storage_root
from ephemera.vm import bootstrap
from ephemera.vm.boot import agent_config

RUN = "ws-creds"
KEYS = {"access_key_id": "ASIATEMPORARY", "secret_access_key": "temporary-secret", "session_token": "temporary-token"}


@pytest.fixture
def vm(local_config, tmp_path):
    """A boot document over localhost storage with a credentials object and a setup script
    that records what it could see; its bundle URL leads nowhere (the boot stops there)."""
    ctx = Context(local_config())
    storage, bucket = ctx.storage, "ephemera-test"
    key = layout.credentials_key(RUN, 0, "abc123")
    storage.put(bucket, key, json.dumps(KEYS).encode())
    root = tmp_path / "vm"
    seen = tmp_path / "seen-by-setup"
    setup = tmp_path / "setup.sh"
    setup.write_text(f"stat -c %a '{root / bootstrap.CREDENTIALS}' > '{seen}' 2>&1\n")
    boot = {
        "run_id": RUN,
        "worker": 0,
        "worker_count": 1,
        "state_bucket": bucket,
        "entry": "x:main",
        "storage": {"backend": "localhost", "localhost": {"root": str(storage_root(ctx.config))}},
        "credentials": {
            "url": storage.presign(bucket, key, "GET"),
            "delete_url": storage.presign(bucket, key, "DELETE"),
            "expires_in": 600,
        },
        "identity": None,
        "setup": str(setup),
        "bundle": {
            "key": layout.bundle_key("0" * 64),
            "sha256": "0" * 64,
            "size": 1,
            "url": (tmp_path / "no-such-bundle").as_uri(),
        },
        "marker": {
            "bucket": bucket,
            "key": f"outputs/{RUN}/_FAILURE.json",
            "url": storage.presign(bucket, f"outputs/{RUN}/_FAILURE.json", "PUT"),
        },
    }
    path = tmp_path / "boot.json"
    path.write_text(json.dumps(boot))
    return storage, bucket, key, path, root, seen


def test_credentials_are_fetched_before_anything_is_installed(vm):
    storage, bucket, key, path, root, seen = vm
    with pytest.raises(SystemExit):
        bootstrap.bootstrap(path, root)  # stops at the bundle (no such URL), after setup
    assert seen.read_text().strip() == "600", "the setup script ran before the credentials were fetched"
    creds = root / bootstrap.CREDENTIALS
    assert json.loads(creds.read_text()) == KEYS and stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert not list(storage.list(bucket, layout.credentials_prefix(RUN))), "the object outlived its reading"
    phases = bootstrap.State(root).data["phases"]
    assert phases["credentials_fetched"] <= phases["setup_done"] and "bundle_installed" not in phases
    assert json.loads(storage.get(bucket, f"outputs/{RUN}/_FAILURE.json"))["error"]["type"] == "BootstrapError"


def test_a_vm_too_late_for_its_credentials_url_installs_nothing(vm):
    """The URL lives minutes: once it has expired (here: the object is gone), the VM says
    why, writes the failure marker, and runs neither the setup nor the install."""
    storage, bucket, key, path, root, seen = vm
    storage.delete(bucket, key)
    with pytest.raises(SystemExit):
        bootstrap.bootstrap(path, root)
    assert not seen.exists() and not (root / bootstrap.CREDENTIALS).exists()
    marker = json.loads(storage.get(bucket, f"outputs/{RUN}/_FAILURE.json"))
    assert "credentials object" in marker["error"]["message"] and "600 s" in marker["error"]["message"]


def test_stage_two_keeps_one_copy_of_the_keys_in_agent_json(vm, monkeypatch):
    storage, bucket, key, path, root, seen = vm
    root.mkdir()
    assert bootstrap.fetch_credentials(root, json.loads(path.read_text())) == root / bootstrap.CREDENTIALS
    monkeypatch.setattr(bootstrap, "http", lambda *a, **k: pytest.fail("stage two fetched the object again"))
    agent = agent_config(json.loads(path.read_text()), root)
    section = json.loads(agent.read_text())["config"]["localhost"]
    assert {k: section[k] for k in KEYS} == KEYS and stat.S_IMODE(agent.stat().st_mode) == 0o600
    assert not (root / bootstrap.CREDENTIALS).exists()


def test_the_credentials_file_is_never_written_through_a_symlink(tmp_path):
    target = tmp_path / "elsewhere"
    link = tmp_path / "credentials.json"
    link.symlink_to(target)
    bootstrap.write_secret(link, b"{}")  # replaces the link itself, never writes its target
    assert not target.exists() and not link.is_symlink() and stat.S_IMODE(link.stat().st_mode) == 0o600
