"""A storage backend is one folder plus one registry line.

``tests/storage/scratch_backend/`` is a complete backend outside Ephemera's source;
registering it (one dict entry) is the only change, and config validation, secret
masking, the JSON Schema, ``get_storage``, the Lithops mapping (both ways, and the
bridge's ``Storage``) and the Terraform variables of a run's VMs all pick it up.
"""

from __future__ import annotations

import json

import pytest

from ephemera.assembly import json_schema, validate
from ephemera.config import REDACTED
from ephemera.errors import ConfigError
from ephemera.assembly import get_storage
from ephemera.storage import BACKENDS, backend_for_scheme, storage_spec
from tests.storage.scratch_backend.config import ScratchSection

TOKEN = "scratch-token-5f4e3d2c1b0a9988"
REGISTRY_LINE = "tests.storage.scratch_backend.spec:ScratchSpec"


@pytest.fixture
def scratch(monkeypatch, tmp_path, home):
    """The one registry line; yields a config dict using the backend."""
    monkeypatch.setitem(BACKENDS, "scratch", REGISTRY_LINE)
    return {
        "home": str(home),
        "storage": {"backend": "scratch", "bucket": "scratch-state"},
        "scratch": {"path": str(tmp_path / "scratch"), "token": TOKEN},
        "workspace": {"name": "ws", "stack": "local"},
    }


def test_unregistered_the_backend_and_its_section_are_unknown(tmp_path):
    with pytest.raises(ConfigError) as info:
        validate({"storage": {"backend": "scratch"}})
    assert info.value.field == "storage.backend" and "not one of localhost, aws_s3, ibm_cos" in str(info.value)
    with pytest.raises(ConfigError) as info:
        validate({"scratch": {"path": str(tmp_path)}})
    assert info.value.field == "scratch" and "unknown section" in str(info.value)


def test_config_validation_masking_and_schema_pick_it_up(scratch):
    config = validate(scratch)
    assert config.section(ScratchSection).model_dump() == {"path": scratch["scratch"]["path"], "token": TOKEN}
    assert config.to_dict()["scratch"]["token"] == REDACTED and TOKEN in config.secret_values()
    with pytest.raises(ConfigError) as info:  # its section forbids unknown keys like every other
        validate({**scratch, "scratch": {**scratch["scratch"], "pth": "/x"}})
    assert info.value.field == "scratch.pth" and "known keys are: path, token" in str(info.value)
    with pytest.raises(ConfigError) as info:  # its own load-time check runs when it is chosen
        validate({**scratch, "scratch": {"token": TOKEN}})
    assert info.value.field == "scratch.path" and "missing" in str(info.value)
    with pytest.raises(ConfigError) as info:  # a secret of the wrong type is not quoted back
        validate({**scratch, "scratch": {"path": "/x", "token": 987654321}})
    assert info.value.field == "scratch.token" and "987654321" not in str(info.value)
    schema = json_schema()
    assert "scratch" in schema["$defs"]["StorageSection"]["properties"]["backend"]["anyOf"][0]["enum"]
    assert schema["$defs"]["ScratchSection"]["properties"]["token"]["writeOnly"] is True


def test_get_storage_builds_it(scratch, tmp_path):
    storage = get_storage(scratch)
    assert type(storage).__name__ == "ScratchStorage" and storage.root == (tmp_path / "scratch").resolve()
    storage.put("scratch-state", "a/b.txt", b"hello")
    assert storage.get("scratch-state", "a/b.txt") == b"hello"
    assert storage.put_if_absent("scratch-state", "lock", b"1") and not storage.put_if_absent("scratch-state", "lock", b"2")


def test_lithops_mapping_and_the_bridge_pick_it_up(scratch):
    import lithops_bridge
    from ephemera.storage.lithops import from_lithops, to_lithops

    config = validate(scratch)
    lithops_storage = to_lithops(config)
    assert lithops_storage == {
        "backend": "scratch",
        "scratch": {"storage_bucket": "scratch-state", "path": scratch["scratch"]["path"], "token": TOKEN},
    }
    back, bucket = from_lithops(lithops_storage)
    assert bucket == "scratch-state" and validate(back).section(ScratchSection) == config.section(ScratchSection)
    # Lithops code configured for the backend reads what Ephemera wrote, by name and by URL scheme
    get_storage(config).put("scratch-state", "in/data.txt", b"from ephemera")
    storage = lithops_bridge.Storage(
        config={"lithops": {"backend": "localhost", "storage": "scratch"}, "scratch": lithops_storage["scratch"]}
    )
    assert storage.get_object("scratch-state", "in/data.txt") == b"from ephemera"
    assert backend_for_scheme("scr") == "scratch"


def test_vm_access_picks_it_up(scratch):
    """The VMs' access comes from the backend's spec: its plain keys for the boot document,
    its secret ones for the one-time credentials object, none for Terraform."""
    from ephemera.context import Context
    from ephemera.lifecycle import stack_variables
    from ephemera.model.runs import RunRecord

    ctx = Context(scratch, storage=object())  # no storage call is made
    from ephemera.model.jobs import JobSpec

    job = JobSpec(
        run_id="ws-1",
        workspace="ws",
        entry="ephemera.workloads.smoke:main",
        params={},
        state_bucket="state",
        output_bucket="state",
        output_prefix="outputs/ws-1/",
        worker_count=1,
    )
    run = RunRecord(run_id="ws-1", workspace="ws", engine="terraform", hard_deadline="2099-01-01T00:00:00+00:00", job=job)
    plain, secure = stack_variables(ctx, run)
    assert plain["storage_backend"] == "scratch" and secure == {} and TOKEN not in json.dumps(plain)
    access = storage_spec("scratch").vm_access(ctx.config)
    assert access.section["path"] == scratch["scratch"]["path"] and access.credentials == {"token": TOKEN}


def test_action_results_scrub_its_secret_even_when_the_config_is_bad(scratch):
    """A secret of the new backend is scrubbed before the config validates: here the
    secret also sits where the error quotes a value (an invalid bucket name)."""
    from ephemera.actions import status

    secret = "Not_A_Bucket_5f4e3d2c1b"
    bad = {**scratch, "storage": {"backend": "scratch", "bucket": secret}, "scratch": {**scratch["scratch"], "token": secret}}
    result = status.main({"config": bad, "run_id": "ws-1"})
    assert result["error"]["code"] == "CONFIG_INVALID" and "storage.bucket" in result["error"]["message"]
    assert secret not in json.dumps(result)
