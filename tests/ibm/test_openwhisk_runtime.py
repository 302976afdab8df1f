"""The real action zip, run the way OpenWhisk's python:3.11 runtime runs it.

The zip is built by ``ephemera.deploy.package`` with its dependencies, extracted and
compiled as the runtime's ``compile`` does, and each action runs in a warm container
process (:mod:`tests.fakes.openwhisk_runtime`) whose interpreter has only the image's
preinstalled packages (apache/openwhisk-runtime-python core/python311Action/requirements.txt:
beautifulsoup4, httplib2, kafka_python, lxml, python-dateutil, requests, scrapy,
simplejson, virtualenv, twisted, netifaces, setuptools 67.4). The bound package
parameters (the config) are merged under each invocation's ("package < action <
invocation"). Storage is IBM COS over HMAC against a local S3 server, the engine is
Schematics against the local fake IAM and Schematics APIs: ibm_boto3, ibm_schematics,
ibm_cloud_sdk_core, pydantic and yaml all come from the zip.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from ephemera import layout
from ephemera.assembly import load_config
from ephemera.deploy.bound import DIGEST_PARAM, config_digest
from ephemera.deploy.openwhisk import openwhisk_plan
from ephemera.deploy.package import build_openwhisk_zip
from ephemera.model import marker as markers
from ephemera.model.ledger import Ledger
from ephemera.assembly import get_storage
from tests.fakes.openwhisk_runtime import OpenWhiskContainer, image_python
from tests.ibm.conftest import SECRETS, deployed

# builds a clean venv first (slow on a busy machine); one worker runs the module, so its venv is built once
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900), pytest.mark.xdist_group("openwhisk-runtime")]


def _python311() -> str:
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = shutil.which("python3.11")
    if not found:
        pytest.skip("the runtime is CPython 3.11 and none is installed here")
    return found


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """The image's interpreter: a venv with exactly the preinstalled packages (all of
    them install here: netifaces builds from source with gcc, as in the image)."""
    python, missing = image_python(tmp_path_factory.mktemp("image") / "venv", _python311())
    assert not missing, f"image packages that did not install here: {missing}"
    return python


@pytest.fixture(scope="module")
def action_zip(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("zip")
    return build_openwhisk_zip(root / "ephemera-action.zip", wheel_dir=root / "wheels")


@pytest.fixture
def cloud_config(cos_config) -> dict:
    """What the deploy binds: the run bundle published beforehand (an action can pack none)."""
    return deployed(
        {
            **cos_config,
            "triggers": [
                {"name": "nightly", "kind": "alarm", "cron": "0 2 * * *", "timezone": "Europe/Madrid"},
                {"name": "done", "kind": "object_write", "prefix": "outputs/", "suffix": ["_SUCCESS.json", "_FAILURE.json"]},
            ],
            "rules": [
                {"trigger": "nightly", "action": "apply", "params": {"params": {"folds": 3}}},
                {"trigger": "done", "action": "destroy"},
            ],
        }
    )


def _bound(config: dict) -> dict:
    """The package's bound parameters as the deploy's param file has them: the config and its digest."""
    return {"config": config, DIGEST_PARAM: config_digest(config)}


def _payload(config: dict, trigger: str) -> dict:
    """The trigger_payload the deploy gives the platform trigger ``trigger`` (what the feed fires with)."""
    steps = openwhisk_plan(load_config(config), zip_path="z.zip", param_file="p.json")
    create = next(s.create for s in steps if s.create[1:4] == ["trigger", "create", trigger])
    return json.loads(create[create.index("trigger_payload") + 1])


@pytest.fixture
def containers(image, action_zip, cloud_config, tmp_path):
    made = {}

    def container(action: str, bound: dict | None = None) -> OpenWhiskContainer:
        key = (action, json.dumps(bound, sort_keys=True))
        if key not in made:
            made[key] = OpenWhiskContainer(
                image,
                action_zip,
                tmp_path / f"c{len(made)}",
                action=action,
                bound=_bound(cloud_config) if bound is None else bound,
            )
        return made[key]

    yield container
    for c in made.values():
        c.close()


def _secretless(*results) -> None:
    text = json.dumps(results)
    for secret in SECRETS:
        assert secret not in text


def test_alarm_then_cos_changes_then_destroyed(containers, cloud_config, schematics):
    """An alarm fire of the deployed trigger applies (with the rule's params), a COS
    change for an unrelated key is ignored, the marker's change destroys the run."""
    apply, status, destroy = containers("apply"), containers("status"), containers("destroy")
    bucket = cloud_config["storage"]["bucket"]
    applied = apply.run(_payload(cloud_config, "nightly"))
    assert applied.get("ok") and applied["state"] == "APPLYING", (applied, apply.stderr())
    run_id = applied["run_id"]
    assert [status.run({"run_id": run_id})["run"]["state"] for _ in range(2)] == ["APPLYING", "RUNNING"]
    ledger = Ledger(get_storage(cloud_config), cloud_config['storage']['bucket'])
    assert ledger.get(run_id).job.params == {"folds": 3}  # the rule's params reached the action

    def cos_change(key: str) -> dict:
        return {
            "bucket": bucket,
            "endpoint": "s3.us-south.cloud-object-storage.appdomain.cloud",
            "key": key,
            "notification": {"bucket_name": bucket, "object_name": key, "event_type": "Object:Write", "object_length": "4"},
        }

    unrelated = destroy.run(cos_change("uploads/data.csv"))
    assert unrelated.get("ignored") and unrelated["reason_code"] == "NOT_A_MARKER", unrelated
    key = markers.key(layout.output_prefix("outputs", run_id), success=True)
    get_storage(cloud_config).put(
        cloud_config['storage']['bucket'], key, json.dumps({"status": "succeeded", "run_id": run_id}).encode()
    )
    done = destroy.run(cos_change(key))
    assert done.get("ok") and done["state"] == "DESTROYING", (done, destroy.stderr())
    assert [status.run({"run_id": run_id})["run"]["state"] for _ in range(2)] == ["DESTROYING", "DESTROYED"]
    reaped = containers("reap").run({})
    assert reaped.get("ok"), reaped
    _secretless(applied, unrelated, done, reaped, apply.stderr(), destroy.stderr())


def test_an_action_bound_without_a_published_bundle_names_the_fix(containers, cos_config, schematics):
    """The runtime holds the zip, not an installed Ephemera distribution nor the
    workload's folder, so an action can pack no run bundle: a config bound by hand
    without ``workload.bundle`` fails the run with that key and its fix, and no
    Schematics job is started."""
    apply = containers("apply", bound=_bound(cos_config))
    result = apply.run({"ephemera_kind": "manual", "idempotency_key": "no-bundle"})
    error = result["error"]
    assert error["code"] == "CONFIG_INVALID" and "workload.bundle" in error["message"], result
    assert "ephemera deploy" in error["message"]
    assert not [c for c in schematics.calls("PUT") if c.path.endswith(("/apply", "/destroy"))]  # nothing applied
    _secretless(result, apply.stderr())


def test_marker_scan_alarm_finds_the_marker(containers, cloud_config):
    """Apache OpenWhisk has no COS feed: the deployed scan alarm finds the marker by
    listing; the destroy of a run whose workload failed succeeds, and says the run FAILED."""
    apply, status, destroy = containers("apply"), containers("status"), containers("destroy")
    applied = apply.run({"ephemera_kind": "manual", "idempotency_key": "scan-test"})
    run_id = applied["run_id"]
    assert [status.run({"run_id": run_id})["run"]["state"] for _ in range(2)] == ["APPLYING", "RUNNING"]
    scan = _payload(cloud_config, "done")
    nothing = destroy.run(scan)
    assert nothing.get("ok") and nothing["markers"] == [], nothing
    key = markers.key(layout.output_prefix("outputs", run_id), success=False)
    failure = markers.failure(run_id, "ephemera.workloads.smoke:main", "RuntimeError", "failing on purpose")
    get_storage(cloud_config).put(cloud_config['storage']['bucket'], key, failure.to_json())
    found = destroy.run(scan)
    assert "error" not in found and found["markers"][0]["key"] == key, found
    assert found["markers"][0]["state"] == "DESTROYING" and found["markers"][0]["outcome"] == "FAILED"
    assert found["markers"][0]["run_error"]["code"] == "WORKLOAD_FAILED"


def test_malformed_events_and_requests_create_nothing(containers, cloud_config):
    apply, destroy = containers("apply"), containers("destroy")
    bucket = cloud_config["storage"]["bucket"]
    ledger = Ledger(get_storage(cloud_config), cloud_config['storage']['bucket'])
    before = len(list(ledger.list()))
    bare = apply.run({})
    assert bare["error"]["code"] == "EVENT_INVALID" and "not a recognisable event" in bare["error"]["message"], bare
    bogus = apply.run({"ephemera_kind": "bogus"})
    assert bogus["error"]["code"] == "EVENT_INVALID" and "ephemera_kind" in bogus["error"]["message"]
    override = apply.run({"ephemera_kind": "manual", "ephemera_action": "reap"})
    assert override["error"]["code"] == "PARAM_INVALID" and "fixed by the deployment" in override["error"]["message"]
    # finding 15: the invocation's config ranks over the bound one in the merge; the action refuses it
    swapped = apply.run(
        {"ephemera_kind": "manual", "config": {**cloud_config, "storage": {"backend": "localhost", "bucket": "x"}}}
    )
    assert swapped["error"]["code"] == "PARAM_INVALID" and "not the config this deployment bound" in swapped["error"]["message"]
    named = apply.run({"ephemera_kind": "manual", "config_file": "/tmp/evil.yaml"})
    assert named["error"]["code"] == "PARAM_INVALID" and "'config_file'" in named["error"]["message"]
    broken = destroy.run({"notification": {"bucket_name": bucket, "event_type": "Object:Delete", "object_name": "k"}})
    assert broken["error"]["code"] == "EVENT_INVALID" and "event_type" in broken["error"]["message"]
    assert len(list(ledger.list())) == before


def test_malformed_bound_config(containers, cloud_config):
    bad = {**cloud_config, "timeouts": {"hard": "soon"}}
    result = containers("apply", _bound(bad)).run({"ephemera_kind": "manual"})
    assert result["error"]["code"] == "CONFIG_INVALID" and "timeouts.hard" in result["error"]["message"], result
    _secretless(result)


def test_a_zip_without_its_dependencies_fails_in_the_runtime(image, tmp_path):
    """The control: the sources alone do not run there (the image has no yaml, pydantic,
    ibm_boto3...), so the tests above pass because of what the zip carries."""
    bare = build_openwhisk_zip(tmp_path / "bare.zip", with_deps=False)
    with pytest.raises(AssertionError) as info:
        OpenWhiskContainer(image, bare, tmp_path / "c", action="status", bound={})
    assert "No module named" in str(info.value)
