"""``ephemera image build`` on IBM through the Schematics engine, against the fakes on 127.0.0.1
(Schematics, IAM, the VPC API): the whole orchestration, fast (the fakes script what each
workspace's apply makes).

Facts relied on:

- IBM VPC API ``GET /v1/instances/{id}`` (``version`` date and ``generation=2`` required, an IAM
  bearer token) answers the instance's ``status``, one of pending, starting, running, stopping,
  stopped, restarting, deleting, failed (the VPC Go SDK's ``InstanceStatus*Const``); an OS
  power-off leaves the instance "stopped" with its boot volume.
- ``ibm_is_image`` with ``source_volume`` copies the volume; it outlives the instance.
- Schematics applies and destroys asynchronously: the engine polls the activity.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from ephemera.assembly import load_config
from ephemera.bundle.cloudimage import build_cloud, delete_cloud, place_of_record
from ephemera.bundle.image import ImageRecord, cloud_problem, get_record, lock_sha256, put_record
from ephemera.bundle.imagestacks import BuildPlace, default_stacks, engine_for
from ephemera.context import Context
from ephemera.errors import ImageBuildError, ImageError
from ephemera.lifecycle.reaper import reap
from ephemera.model.runs import RunState
from ephemera.storage import get_storage
from ephemera.timeutil import now_utc
from tests.fakes.iam_server import start_iam_server
from tests.fakes.ibm_vpc_server import start_vpc_server
from tests.fakes.schematics_images import PerWorkspaceSchematics

API_KEY = "apikey-image-build-SECRET-do-not-log"
RUN_WS, BUILDER_WS, IMAGE_WS = "us-south.workspace.gpu.1", "us-south.workspace.builder.2", "us-south.workspace.image.3"
INSTANCE, VOLUME = "0717_builder-0001", "r006-bootvol-0001"
IMAGE_ID = "r006-11111111-2222-3333-4444-555555555555"
LOCK = "tabulate==0.9.0 \\\n    --hash=sha256:0095b12bf5966de529c0feb1fa08671671b3368eec77d7ef7ab114be2c068b3c\n"
BUILDER_RESOURCES = [
    {"resource_type": "ibm_is_vpc", "resource_name": "build", "resource_id": "r006-vpc-b"},
    {"resource_type": "ibm_is_instance", "resource_name": "builder", "resource_id": INSTANCE},
]


@pytest.fixture
def fakes():
    iam = start_iam_server({API_KEY})
    schematics = PerWorkspaceSchematics(RUN_WS)
    vpc = start_vpc_server()
    schematics.token_check = vpc.token_check = lambda token: token in iam.tokens
    for ws in (BUILDER_WS, IMAGE_WS):
        schematics.add_workspace(ws)
    schematics.on_apply(
        BUILDER_WS,
        BUILDER_RESOURCES,
        {
            "instance_ids": {"value": [INSTANCE], "type": "list", "sensitive": False},
            "boot_volume_id": {"value": VOLUME, "type": "string", "sensitive": False},
        },
    )
    schematics.on_apply(
        IMAGE_WS,
        [{"resource_type": "ibm_is_image", "resource_name": "image", "resource_id": IMAGE_ID}],
        {"image_id": {"value": IMAGE_ID, "type": "string", "sensitive": False}},
    )
    vpc.script(INSTANCE, ["running", "running", "stopping", "stopped"])
    yield iam, schematics, vpc
    for server in (iam, schematics, vpc):
        server.stop()


@pytest.fixture
def config(fakes, local_config):
    iam, schematics, _ = fakes
    return load_config(
        local_config(
            engine={"backend": "schematics"},
            ibm={"iam_api_key": API_KEY, "iam_url": iam.url},
            schematics={"workspace_id": RUN_WS, "url": schematics.url},
            workspace={"name": "gpu", "stack": "ibm-vpc-gpu"},
        )
    )


def _place(vpc) -> BuildPlace:
    return BuildPlace(
        cloud="ibm",
        engine="schematics",
        builder_workspace="image-builder-t",
        image_workspace="image-t",
        stacks=default_stacks(),
        builder_workspace_id=BUILDER_WS,
        image_workspace_id=IMAGE_WS,
        vpc_url=vpc.url,
    )


def _build(config, vpc, **opts):
    opts = {"poll": 0.0, "sleep": lambda s: None, "timeout": 5.0, **opts}
    return build_cloud(config, get_storage(config), _place(vpc), LOCK, ["tabulate==0.9.0"], **opts)


def _applied(schematics, ws_id: str) -> list[dict]:
    """The variables each apply of a workspace was sent with (the store replaced before it)."""
    stores = [r.body["variablestore"] for r in schematics.calls("PUT", "/values") if ws_id in r.path]
    return [{v["name"]: v["value"] for v in store} for store in stores]


def test_a_build_against_schematics_records_the_image_and_leaves_no_builder_resource(config, fakes, caplog):
    iam, schematics, vpc = fakes
    caplog.set_level(logging.DEBUG)
    record, built = _build(config, vpc)
    assert built and record.id == IMAGE_ID and record.kind == "ibm" and record.stack == "ibm-vpc-gpu"
    assert record.lock_sha256 == lock_sha256(LOCK) and record.workspace == "image-t" and record.engine_workspace_id == IMAGE_WS
    assert get_record(get_storage(config), config.state_bucket, "ibm-vpc-gpu", lock_sha256(LOCK)) == record
    assert cloud_problem(config, record) is None, "a cloud run of this lock would not boot the image it built"

    # the builder is gone, the image workspace holds only the image
    assert schematics.workspaces[BUILDER_WS].resources == [] and schematics.workspaces[BUILDER_WS].status == "INACTIVE"
    assert [r["resource_type"] for r in schematics.workspaces[IMAGE_WS].resources] == ["ibm_is_image"]
    assert schematics.workspaces[RUN_WS].activities == {}  # the run's workspace is never touched

    # what each workspace was applied with: the lock to the builder, its boot volume to the image
    (builder_vars,) = _applied(schematics, BUILDER_WS)
    assert builder_vars["requirements_lock"] == LOCK and builder_vars["lock_sha256"] == lock_sha256(LOCK)
    assert builder_vars["run_id"] == record.build_id
    (image_vars,) = _applied(schematics, IMAGE_WS)
    assert image_vars["source_volume_id"] == VOLUME and image_vars["lock_sha256"] == lock_sha256(LOCK)

    # the power state came from the VPC API, with an IAM token, until "stopped"
    paths = [p for p, h in vpc.requests if h["authorization"][7:] in iam.tokens]
    assert len(paths) == 4 and all(p.startswith(f"/v1/instances/{INSTANCE}?") and "generation=2" in p for p in paths)

    # the build's ledger record: applied, ran, destroyed, with nothing left
    build = Context(config).ledger.get(record.build_id)
    assert build.state == RunState.DESTROYED and build.event["image_build"]["lock_sha256"] == record.lock_sha256
    assert [t.state for t in build.transitions] == ["REQUESTED", "APPLYING", "RUNNING", "SUCCEEDED", "DESTROYING", "DESTROYED"]
    assert build.resources == []

    # the API key is in no record, no log line
    stored = get_storage(config)
    for key in (f"ephemera/runs/{record.build_id}.json",):
        assert API_KEY not in stored.get(config.state_bucket, key).decode()
    assert API_KEY not in json.dumps(record.to_dict()) and API_KEY not in caplog.text

    # built once: the next build of the same lock is the recorded one
    again, built = _build(config, vpc)
    assert not built and again == record and len(_applied(schematics, BUILDER_WS)) == 1


def _assert_failed_cleanly(config, schematics, exc_info):
    assert get_record(get_storage(config), config.state_bucket, "ibm-vpc-gpu", lock_sha256(LOCK)) is None
    assert schematics.workspaces[BUILDER_WS].resources == [] and schematics.workspaces[IMAGE_WS].resources == []
    (build,) = [r for r in Context(config).ledger.list() if r.event.get("image_build")]
    assert build.state == RunState.DESTROYED and build.error.code == "IMAGE_BUILD_FAILED"
    assert exc_info.value.code == "IMAGE_BUILD_FAILED" and build.run_id in exc_info.value.message


def test_a_builder_that_never_powers_off_is_destroyed_and_nothing_is_recorded(config, fakes):
    _, schematics, vpc = fakes
    vpc.script(INSTANCE, ["running"])
    with pytest.raises(ImageBuildError) as exc_info:
        _build(config, vpc, timeout=3.0, poll=1.0)
    assert "still 'running' after 3s" in exc_info.value.message and "--timeout" in exc_info.value.message
    assert _applied(schematics, IMAGE_WS) == []  # no image from a VM still installing
    _assert_failed_cleanly(config, schematics, exc_info)


@pytest.mark.parametrize("status", ["failed", "deleting"])
def test_a_lost_builder_fails_at_once(config, fakes, status):
    _, schematics, vpc = fakes
    vpc.script(INSTANCE, ["running", status])
    with pytest.raises(ImageBuildError, match=f"is '{status}', not stopped") as exc_info:
        _build(config, vpc, timeout=3600.0, poll=1.0)
    assert len(vpc.requests) == 2  # not polled until the timeout
    _assert_failed_cleanly(config, schematics, exc_info)


def test_a_failed_builder_apply_destroys_what_it_made(config, fakes):
    _, schematics, vpc = fakes
    schematics.apply_scripts = [["INPROGRESS", "FAILED"]]
    with pytest.raises(ImageBuildError, match="the builder's apply failed") as exc_info:
        _build(config, vpc)
    assert vpc.requests == [] and _applied(schematics, IMAGE_WS) == []
    assert [a["name"] for a in schematics.workspaces[BUILDER_WS].activities.values()] == ["APPLY", "DESTROY"]
    _assert_failed_cleanly(config, schematics, exc_info)


def test_a_failed_image_apply_destroys_the_builder_and_records_nothing(config, fakes):
    _, schematics, vpc = fakes
    schematics.apply_scripts = [["INPROGRESS", "COMPLETED"], ["INPROGRESS", "FAILED"]]
    with pytest.raises(ImageBuildError, match="the image's apply failed") as exc_info:
        _build(config, vpc)
    _assert_failed_cleanly(config, schematics, exc_info)


def test_an_image_workspace_holding_a_recorded_image_is_refused_before_anything_is_applied(config, fakes):
    _, schematics, vpc = fakes
    record, _ = _build(config, vpc)
    other = {**record.to_dict(), "lock_sha256": "c" * 64}  # the same workspace, asked to hold another lock's image
    put_record(get_storage(config), config.state_bucket, ImageRecord.from_dict(other))
    applies = len(schematics.calls("PUT", "/apply"))
    with pytest.raises(ImageError, match=f"already holds image {IMAGE_ID}") as exc_info:
        build_cloud(config, get_storage(config), _place(vpc), LOCK + "\n# changed\n", [], poll=0.0, sleep=lambda s: None)
    assert exc_info.value.field == "image workspace" and f"ephemera image delete {IMAGE_ID}" in exc_info.value.message
    assert len(schematics.calls("PUT", "/apply")) == applies and len(list(Context(config).ledger.list())) == 1


def test_an_unrecorded_image_a_dead_build_left_is_destroyed_before_the_build(config, fakes):
    _, schematics, vpc = fakes
    schematics.workspaces[IMAGE_WS].resources = [{"resource_type": "ibm_is_image", "resource_name": "image", "resource_id": "x"}]
    schematics.workspaces[IMAGE_WS].status = "ACTIVE"  # applied by a build killed before it recorded the image
    record, built = _build(config, vpc)
    assert built and record.id == IMAGE_ID
    assert [a["name"] for a in schematics.workspaces[IMAGE_WS].activities.values()] == ["DESTROY", "APPLY"]


def test_a_builder_workspace_another_build_holds_is_refused(config, fakes):
    _, schematics, vpc = fakes
    schematics.workspaces[BUILDER_WS].resources = list(BUILDER_RESOURCES)
    with pytest.raises(ImageError, match="holds what another build made") as exc_info:
        _build(config, vpc)
    assert exc_info.value.field == "builder workspace" and schematics.calls("PUT", "/apply") == []
    assert schematics.workspaces[BUILDER_WS].resources == BUILDER_RESOURCES  # not ours to destroy


def test_force_never_makes_a_second_image_of_a_recorded_lock(config, fakes):
    """A second image of one lock would overwrite the record of the first, which would stay billed with no record."""
    _, schematics, vpc = fakes
    record, _ = _build(config, vpc)
    with pytest.raises(ImageError, match=f"image {record.id} of this lock is recorded") as exc_info:
        _build(config, vpc, force=True)
    assert exc_info.value.field == "--force" and len(_applied(schematics, BUILDER_WS)) == 1


def test_delete_destroys_the_image_workspace_then_removes_the_record(config, fakes):
    _, schematics, vpc = fakes
    record, _ = _build(config, vpc)
    storage = get_storage(config)
    schematics.destroy_script = ["INPROGRESS", "FAILED"]
    with pytest.raises(ImageBuildError, match="the record is kept"):
        delete_cloud(config, storage, record, place_of_record(record), sleep=lambda s: None)
    assert get_record(storage, config.state_bucket, record.stack, record.lock_sha256) == record
    schematics.destroy_script = ["INPROGRESS", "COMPLETED"]
    delete_cloud(config, storage, record, place_of_record(record), sleep=lambda s: None)
    assert schematics.workspaces[IMAGE_WS].resources == []
    assert get_record(storage, config.state_bucket, record.stack, record.lock_sha256) is None


KILLED_BUILD = """
import json, sys
from ephemera.assembly import load_config
from ephemera.bundle.cloudimage import build_cloud
from ephemera.bundle.imagestacks import BuildPlace
from ephemera.storage import get_storage
args = json.loads(sys.argv[1])
config = load_config(args["config"])
build_cloud(config, get_storage(config), BuildPlace(**args["place"]), args["lock"], [], poll=0.2, timeout=600)
"""


def test_a_build_killed_after_the_builder_applied_is_destroyed_by_the_reaper(config, fakes, tmp_path):
    """SIGKILL: no cleanup of its own runs. The reaper leaves a running build alone until its
    hard deadline (its VM reports to no one: no boot or heartbeat rule applies), then destroys
    the builder with the build's own engine (never the run's)."""
    _, schematics, vpc = fakes
    vpc.script(INSTANCE, ["running"])
    args = {"config": config.to_dict(redact=False), "place": _place(vpc).to_dict(), "lock": LOCK}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_BUILD, json.dumps(args)], env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        while not vpc.requests and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert vpc.requests, "the build never applied its builder"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    ctx = Context(config)
    (build,) = ctx.ledger.list()
    assert build.state == RunState.RUNNING and schematics.workspaces[BUILDER_WS].resources == BUILDER_RESOURCES

    assert [a for a in reap(ctx) if a.run_id == build.run_id] == []  # still within its deadline: left alone
    late = now_utc() + timedelta(seconds=3600 + 1800 + 60)
    acted = [a for a in reap(ctx, now=late) if a.run_id == build.run_id]
    assert acted and "hard deadline" in acted[0].why and acted[0].after == "DESTROYING"
    for _ in range(5):  # Schematics destroys asynchronously: the next passes poll it
        if ctx.ledger.get(build.run_id).state == RunState.DESTROYED:
            break
        reap(ctx, now=late)
    assert ctx.ledger.get(build.run_id).state == RunState.DESTROYED
    assert schematics.workspaces[BUILDER_WS].resources == [] and schematics.workspaces[RUN_WS].activities == {}
    assert get_record(get_storage(config), config.state_bucket, "ibm-vpc-gpu", lock_sha256(LOCK)) is None


def test_the_cli_builds_lists_and_deletes_a_cloud_image(config, fakes, monkeypatch, capsys, tmp_path):
    """``ephemera image build|list|delete`` on an ibm-vpc-gpu config with the schematics engine.
    The lock is the one a cloud run packs (``cloud_lock``: resolved with uv from the index, tested
    with the bundle); here it is fixed, as is the poll interval."""
    from ephemera import cli
    from ephemera.bundle import cloudimage

    _, schematics, vpc = fakes
    monkeypatch.setattr(cloudimage, "cloud_lock", lambda config: (LOCK, ["tabulate==0.9.0"]))
    monkeypatch.setattr(cloudimage, "POLL_SECONDS", 0.0)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.to_dict(redact=False)))

    def run(*args: str) -> str:
        code = cli.main(["image", *args, "--config", str(path)])
        out = capsys.readouterr()
        assert code == 0, out.err
        assert API_KEY not in out.out + out.err
        return out.out

    built = run("build", "--builder-workspace", BUILDER_WS, "--image-workspace", IMAGE_WS, "--vpc-url", vpc.url)
    assert f"image {IMAGE_ID} built" in built and "its builder is destroyed" in built
    assert schematics.workspaces[BUILDER_WS].resources == []
    listed = run("list")
    assert IMAGE_ID in listed and "ibm-vpc-gpu" in listed and f"workspace image-{lock_sha256(LOCK)[:12]}" in listed
    assert "deleted" in run("delete", IMAGE_ID)
    assert schematics.workspaces[IMAGE_WS].resources == [] and "no images recorded" in run("list")

    # a Schematics build without its workspaces is refused, naming the flag
    assert cli.main(["image", "build", "--config", str(path)]) != 0
    assert "--builder-workspace" in capsys.readouterr().err


def test_the_run_engines_orphan_sweep_never_sees_a_terraform_image_workspace(local_config):
    """An image workspace's owner is its build, whose record ends DESTROYED: were it among the run
    engine's workspaces, the reaper's reconcile would sweep it and destroy the image. The terraform
    engine keeps build workspaces apart (``<home>/image-workspaces``) and with their own stacks."""
    from ephemera.engines import OrphanSweeper, get_engine

    config = load_config(local_config(engine={"backend": "terraform"}))
    place = BuildPlace("aws", "terraform", "image-builder-t", "image-t", default_stacks())
    imager = engine_for(config, place, "image")
    imager.workdir("image-t").mkdir(parents=True)
    (imager.workdir("image-t") / "ephemera.owner.json").write_text(json.dumps({"run_id": "img-gone"}))
    runs = get_engine(config)
    assert isinstance(runs, OrphanSweeper) and "image-t" not in runs.workspaces()
    assert (
        imager.stack.folder.name == "aws-image" and engine_for(config, place, "builder").stack.folder.name == "aws-image-builder"
    )
