"""Fixtures of the bridge tests: a clean Lithops environment, and two real local VMs.

``vms`` (session) starts two agents with the agent's own ``start`` command over
localhost storage, waits for their warm pools, and stops them with ``stop`` at the
end, checking that no agent process is left. Tests that kill pools use their own run
or pool size (test_standalone.py), so the shared ones stay intact. ``fexec`` is parametrized over both compute backends and builds
executors that share one storage (so ``obj`` and ``storage`` tests see the same data).
"""

from __future__ import annotations

import pytest

from ephemera.vm.localrun import LocalRun


def pid_alive(pid: int) -> bool:
    from ephemera.vm.pids import is_agent_process

    return is_agent_process(pid)


@pytest.fixture(autouse=True)
def clean_lithops_env(tmp_path, monkeypatch):
    """No Lithops config leaks in from the machine: env, cwd and HOME are fresh."""
    for var in ("LITHOPS_CONFIG", "LITHOPS_CONFIG_FILE", "EPHEMERA_CONFIG_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "userhome"))
    monkeypatch.setenv("EPHEMERA_HOME", str(tmp_path / "ephemera-home"))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


@pytest.fixture(scope="session")
def vms(tmp_path_factory):
    run = LocalRun(tmp_path_factory.mktemp("vms"), workers=2, worker_processes=2, heartbeat_interval=0.5)
    run.start().wait_ready()
    pids = run.pids()
    assert len(pids) == 2 and all(pid_alive(p) for p in pids)
    yield run
    run.close()
    assert not [p for p in pids if pid_alive(p)], "an agent process outlived stop"


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
            return {"lithops": {"backend": "localhost", "storage": "localhost"},
                    "localhost": {**shared_storage, "worker_processes": 2}}
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

