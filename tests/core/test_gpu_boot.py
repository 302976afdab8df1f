"""The GPU proof before paid work: NVML (a fake ``pynvml``) and nvidia-smi (a fake script),
the reboot-once path and the failure marker, through the bootstrap's second stage."""

from __future__ import annotations

import json
import secrets
import sys
import types
from pathlib import Path

import pytest

from ephemera import layout
from ephemera.context import Context
from ephemera.storage.localhost.config import storage_root
from ephemera.model.jobs import JobSpec, save_job
from ephemera.vm import bootstrap
from ephemera.vm.boot import boot_vm
from ephemera.vm.gpu import GPUCheckError, check_gpus


def fake_nvml(state: str = "ok", names=("NVIDIA L4",), driver="550.90.07", cuda=12040) -> types.ModuleType:
    """A stand-in for nvidia-ml-py's ``pynvml``: its error classes (``NVMLError`` and the
    generated ``NVMLError_DriverNotLoaded`` / ``NVMLError_LibraryNotFound``) and the calls
    the check makes; ``nvmlSystemGetCudaDriverVersion`` returns 1000 * major + 10 * minor."""
    nvml = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    nvml.NVMLError = NVMLError
    nvml.NVMLError_DriverNotLoaded = type("NVMLError_DriverNotLoaded", (NVMLError,), {})
    nvml.NVMLError_LibraryNotFound = type("NVMLError_LibraryNotFound", (NVMLError,), {})

    def init():
        if state == "driver_not_loaded":
            raise nvml.NVMLError_DriverNotLoaded("Driver Not Loaded")
        if state == "library_not_found":
            raise nvml.NVMLError_LibraryNotFound("NVML Shared Library Not Found")

    nvml.nvmlInit, nvml.nvmlShutdown = init, lambda: None
    nvml.nvmlDeviceGetCount = lambda: len(names)
    nvml.nvmlDeviceGetHandleByIndex = lambda i: i
    nvml.nvmlDeviceGetName = lambda h: names[h]
    nvml.nvmlSystemGetDriverVersion = lambda: driver
    nvml.nvmlSystemGetCudaDriverVersion = lambda: cuda
    return nvml


@pytest.fixture
def no_smi(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))


def test_a_profile_without_gpus_passes_without_probing(monkeypatch, no_smi):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # nothing to probe with
    assert check_gpus(0) is None


def test_nvml_proves_count_model_driver_and_cuda(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(names=("NVIDIA L4", "NVIDIA L4")))
    report = check_gpus(2, "L4")
    assert report.to_dict() == {
        "count": 2,
        "models": ["NVIDIA L4", "NVIDIA L4"],
        "driver": "550.90.07",
        "cuda": "12.4",
        "probe": "nvml",
    }
    with pytest.raises(GPUCheckError, match="promises 4 GPU"):
        check_gpus(4, "L4")
    with pytest.raises(GPUCheckError, match="promises L40S"):
        check_gpus(1, "L40S")


def test_a_driver_not_loaded_asks_for_a_reboot_and_no_driver_fails(monkeypatch, no_smi):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml("driver_not_loaded"))
    with pytest.raises(GPUCheckError) as info:
        check_gpus(1, "L4")
    assert info.value.needs_reboot
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml("library_not_found"))
    with pytest.raises(GPUCheckError, match="no NVIDIA driver is installed") as info:
        check_gpus(1)
    assert not info.value.needs_reboot


def test_nvidia_smi_is_the_fallback(monkeypatch, tmp_path):
    """nvidia-smi --query-gpu=name,driver_version --format=csv,noheader prints one line per
    GPU; its plain output's header says "CUDA Version: 12.4"."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(
        '#!/bin/sh\nif [ "$1" = "" ]; then echo "| NVIDIA-SMI 550.90.07   Driver Version: 550.90.07   CUDA Version: 12.4 |"; '
        'else echo "NVIDIA L4, 550.90.07"; fi\n'
    )
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml("library_not_found"))
    report = check_gpus(1, "L4")
    assert (report.count, report.models, report.driver, report.cuda, report.probe) == (
        1,
        ["NVIDIA L4"],
        "550.90.07",
        "12.4",
        "nvidia-smi",
    )
    smi.write_text("#!/bin/sh\necho \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\"; exit 9\n")
    with pytest.raises(GPUCheckError) as info:
        check_gpus(1)
    assert info.value.needs_reboot


@pytest.fixture
def vm(local_config, tmp_path):
    """A VM's boot document over localhost storage, with the run's job spec in place."""
    ctx = Context(local_config())
    job = JobSpec(
        run_id="ws-gpu",
        workspace="ws",
        entry="ephemera.workloads.smoke:main",
        params={},
        state_bucket="ephemera-test",
        output_bucket="ephemera-test",
        output_prefix=layout.output_prefix("outputs", "ws-gpu"),
    )
    run_key = secrets.token_hex(32)
    save_job(ctx.storage, "ephemera-test", job, run_key)
    root = tmp_path / "vm"
    root.mkdir()
    flag = tmp_path / "rebooted"
    boot = {
        "run_id": "ws-gpu",
        "worker": 0,
        "worker_count": 1,
        "state_bucket": "ephemera-test",
        "entry": job.entry,
        "storage": {"backend": "localhost", "localhost": {"root": str(storage_root(ctx.config))}},
        "bundle": {"sha256": "0" * 64},
        "credentials": None,
        "identity": None,
        "marker": {"bucket": "ephemera-test", "key": "outputs/ws-gpu/_FAILURE.json", "url": None},
        "gpu": {"count": 1, "model": "L4"},
        "run_key": run_key,
        "reboot": [sys.executable, "-c", f"open({str(flag)!r}, 'a').write('x')"],
    }
    path = tmp_path / "boot.json"
    path.write_text(json.dumps(boot))
    bootstrap.State(root).phase("booted")
    return ctx, path, root, flag


def test_the_vm_reboots_once_for_the_driver_then_fails_with_the_reason(vm, monkeypatch, no_smi):
    ctx, path, root, flag = vm
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml("driver_not_loaded"))
    assert boot_vm(path, root) == 0  # the first boot: the driver is not loaded, reboot
    assert flag.read_text() == "x" and bootstrap.State(root).data["reboots"] == 1
    assert boot_vm(path, root) == 1  # after the reboot it still is not: the run ends
    assert flag.read_text() == "x", "rebooted only once"
    marker = json.loads(ctx.storage.get("ephemera-test", "outputs/ws-gpu/_FAILURE.json"))
    assert marker["error"]["type"] == "BootstrapError" and "Driver Not Loaded" in marker["error"]["message"]
    assert marker["boot"]["reboots"] == 1 and "rebooting once" in marker["log_tail"]
    from ephemera.model.logs import read_logs

    lines, _ = read_logs(ctx.storage, "ephemera-test", "ws-gpu")  # the VM's boot log, shipped as it failed
    assert any(line.source == "boot" and line.worker == 0 and "boot failed" in line.text for line in lines)


def test_after_the_reboot_a_loaded_driver_starts_the_agent(vm, monkeypatch, no_smi):
    ctx, path, root, _flag = vm
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml("driver_not_loaded"))
    assert boot_vm(path, root) == 0
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml())
    cmd = boot_vm(path, root, pid_file=str(root / "agent.pid"))
    assert cmd[1:4] == ["-m", "ephemera.vm", "serve"] and "--pid-file" in cmd
    state = bootstrap.State(root).data
    assert state["gpu"]["models"] == ["NVIDIA L4"] and state["gpu"]["cuda"] == "12.4" and "driver_ready" in state["phases"]
    assert (Path(root) / "agent.json").stat().st_mode & 0o777 == 0o600
