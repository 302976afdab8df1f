"""A call's numeric libraries share the VM's CPUs among the pool's processes.

joblib's documentation of its ``loky`` backend states the rule followed here: "the
number of threads they are allowed to use in inner computations is limited to
``cpu_count() // n_jobs``" (oversubscription), through ``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``, ``VECLIB_MAXIMUM_THREADS`` and
``NUMEXPR_NUM_THREADS``. Without it each of a pool's processes loads OpenBLAS with a
thread per CPU, and on a busy machine a fit that needs 0.2 s of CPU took 2.5 s.
"""

from __future__ import annotations

import json

from lithops_bridge.threads import THREAD_VARS, thread_caps, usable_cpus


def test_each_worker_gets_its_share_of_the_cpus_and_never_less_than_one():
    assert thread_caps(4, already={}, cpus=8) == {name: "2" for name in THREAD_VARS}
    assert thread_caps(3, already={}, cpus=2) == {name: "1" for name in THREAD_VARS}
    assert thread_caps(0, already={}, cpus=3) == {name: "3" for name in THREAD_VARS}  # no pool size: the whole machine


def test_a_variable_the_user_already_set_is_left_alone():
    caps = thread_caps(2, already={"OMP_NUM_THREADS": "7"}, cpus=8)
    assert "OMP_NUM_THREADS" not in caps and caps["OPENBLAS_NUM_THREADS"] == "4"


def test_the_task_processes_environment_keeps_what_the_job_config_sets():
    from lithops_bridge.backends.standalone.server import TaskServer

    server = TaskServer(None, "b", "r", 0, 2, {"OMP_NUM_THREADS": "3", "LITHOPS_BRIDGE_WORKER": "1"}, "a" * 64)
    assert server.task_env["OMP_NUM_THREADS"] == "3" and server.task_env["LITHOPS_BRIDGE_WORKER"] == "1"
    assert server.task_env["OPENBLAS_NUM_THREADS"] == str(max(1, usable_cpus() // 2))


def _service(same_host: bool, worker_processes: int):
    from ephemera.vm.services import VMInfo
    from lithops_bridge.vm_service import BridgeService

    section = {"storage_bucket": "b", "storage_root": "/nonexistent"}
    return BridgeService(
        VMInfo(
            run_id="ws-20261207t010000-abc",
            worker=0,
            worker_count=2,
            storage=None,
            state_bucket="b",
            worker_processes=worker_processes,
            use_gpu=False,
            hard_deadline=None,
            same_host=same_host,
            lithops_storage={"backend": "localhost", "localhost": section},
            run_key="k" * 64,
        )
    )


def test_a_local_vms_workload_gets_the_vms_share_and_a_cloud_vms_the_whole_machine(monkeypatch):
    for name in THREAD_VARS:
        monkeypatch.delenv(name, raising=False)
    local = _service(same_host=True, worker_processes=1).workload_env()
    assert {name: local[name] for name in THREAD_VARS} == {name: "1" for name in THREAD_VARS}
    assert json.loads(local["LITHOPS_CONFIG"])["lithops"]["backend"] == "standalone"
    cloud = _service(same_host=False, worker_processes=1).workload_env()
    assert not set(cloud) & set(THREAD_VARS)  # the cloud VM is the workload's own: its libraries size themselves
