"""Fixtures of the bridge tests: a clean Lithops environment, and two real local VMs.

``vms`` (session) starts two agents with the agent's own ``start`` command over
localhost storage, waits for their warm pools, and stops them with ``stop`` at the
end, checking that no agent process is left; ``s3_vms`` is the same over S3 (the
moto server on 127.0.0.1). Tests that kill pools use their own run or pool size
(test_standalone.py), so the shared ones stay intact. ``fexec`` is parametrized over
both compute backends and builds executors that share one storage (so ``obj`` and
``storage`` tests see the same data). ``lithops_config`` is parametrized over both
compute backends and both storages (localhost, S3): four Lithops configs.
"""

from __future__ import annotations

import uuid

import pytest

from ephemera.vm.localrun import LocalRun


def pid_alive(pid: int) -> bool:
    from ephemera.vm.pids import is_agent_process

    return is_agent_process(pid)


@pytest.fixture(autouse=True)
def clean_lithops_env(tmp_path, monkeypatch):
    """No Lithops config leaks in from the machine: env, cwd and HOME are fresh; nor does
    the pace an earlier test's maps taught this process (it would change how the next
    map of the same function is cut into batches)."""
    from lithops_bridge.backends.standalone.pace import PACES

    PACES.clear()
    for var in ("LITHOPS_CONFIG", "LITHOPS_CONFIG_FILE", "EPHEMERA_CONFIG_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "userhome"))
    monkeypatch.setenv("EPHEMERA_HOME", str(tmp_path / "ephemera-home"))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


S3_KEY_ID, S3_SECRET = "BRIDGEVMKEYID0001", "bridge-vm-secret-7Tq2Lr9Xc4"  # the moto server takes any keys


# Every test that uses the session's shared VMs runs on one pytest-xdist worker
# (`make test` runs with --dist loadgroup): the VMs start once, and no test waits on
# another worker's VMs.
_SHARED_VM_FIXTURES = {"vms", "s3_vms", "shared_storage", "config_for", "fexec", "lithops_config"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which turns the mark into the group
def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if "tests/bridge/" in item.nodeid and _SHARED_VM_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("bridge-shared-vms"))


def _started(root, storage: dict | None = None):
    # a session's VMs live as long as the session (a worker may run other tests first):
    # their own hard deadline is an hour, and stop() ends them at the session's end
    run = LocalRun(root, workers=2, worker_processes=2, heartbeat_interval=0.5, storage=storage, hard_deadline=3600)
    run.start().wait_ready()
    pids = run.pids()
    assert len(pids) == 2 and all(pid_alive(p) for p in pids)
    yield run
    run.close()
    assert not [p for p in pids if pid_alive(p)], "an agent process outlived stop"


@pytest.fixture(scope="session")
def vms(tmp_path_factory):
    yield from _started(tmp_path_factory.mktemp("vms"))


@pytest.fixture(scope="session")
def s3_vms(tmp_path_factory, s3_endpoint):
    """Two local VMs whose storage is S3 (the moto server on 127.0.0.1)."""
    storage = {
        "storage": {"backend": "aws_s3", "bucket": f"bridge-vms-{uuid.uuid4().hex[:12]}"},
        "aws_s3": {"endpoint": s3_endpoint, "region": "us-east-1", "access_key_id": S3_KEY_ID, "secret_access_key": S3_SECRET},
    }
    yield from _started(tmp_path_factory.mktemp("s3vms"), storage)


@pytest.fixture(
    params=[("localhost", "localhost"), ("localhost", "aws_s3"), ("standalone", "localhost"), ("standalone", "aws_s3")],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def lithops_config(request) -> dict:
    """A Lithops config per (compute backend, storage): localhost compute on a private
    bucket, or the shared VMs of that storage."""
    compute, storage = request.param
    if compute == "standalone":
        cfg = request.getfixturevalue("vms" if storage == "localhost" else "s3_vms").lithops_config
        cfg["standalone"]["poll_interval"] = 0.05
        return cfg
    cfg = {"lithops": {"backend": "localhost", "storage": storage}, "localhost": {"worker_processes": 2}}
    bucket = f"bridge-{uuid.uuid4().hex[:12]}"
    if storage == "localhost":
        cfg["localhost"].update(storage_bucket=bucket, storage_root=str(request.getfixturevalue("tmp_path") / "storage"))
    else:
        cfg["aws_s3"] = {
            "storage_bucket": bucket,
            "endpoint": request.getfixturevalue("s3_endpoint"),
            "region": "us-east-1",
            "access_key_id": S3_KEY_ID,
            "secret_access_key": S3_SECRET,
        }
        from lithops_bridge import Storage

        Storage(config=cfg).create_bucket(bucket)
    return cfg


@pytest.fixture(scope="session")
def shared_storage(vms) -> dict:
    """The bridge storage config both backends use (the VMs' localhost storage)."""
    return {"storage_bucket": vms.bucket, "storage_root": str(vms.root / "storage")}


@pytest.fixture(params=["localhost", "standalone"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def config_for(vms, shared_storage):
    def build(backend: str, **standalone) -> dict:
        if backend == "localhost":
            return {
                "lithops": {"backend": "localhost", "storage": "localhost"},
                "localhost": {**shared_storage, "worker_processes": 2},
            }
        cfg = vms.lithops_config
        cfg["standalone"].update(standalone)
        return cfg

    return build


@pytest.fixture
def fexec(backend, config_for):
    import lithops_bridge

    with lithops_bridge.FunctionExecutor(config=config_for(backend)) as ex:
        yield ex


@pytest.fixture
def bucket(vms) -> str:
    return vms.bucket
