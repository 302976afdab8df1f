"""Proving a VM's GPUs before paid work starts: the driver is loaded and the GPUs are there.

Two probes, NVML first (``nvidia-ml-py``, the ``gpu`` extra the VMs install; it needs
``libnvidia-ml.so.1``, which the driver ships), then ``nvidia-smi``. A probe answers
the GPU count and models, the driver version and the CUDA version the driver supports
(NVML reports it as ``1000 * major + 10 * minor``: 12040 is CUDA 12.4).

:func:`check_gpus` compares that with what the profile promises (count, and a model
name such as ``L4`` that each GPU's name must contain). A driver that is installed but
not loaded (NVML's ``DriverNotLoaded``, or nvidia-smi unable to talk to the driver)
raises :class:`GPUCheckError` with ``needs_reboot``: the bootstrap reboots once and
checks again. No driver at all, too few GPUs or the wrong model fail at once. A
profile that promises no GPU passes without probing, on any machine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field

from ephemera.errors import EphemeraError

SMI_TIMEOUT = 60


class GPUCheckError(EphemeraError):
    code = "GPU_CHECK_FAILED"

    def __init__(self, message: str, *, needs_reboot: bool = False):
        super().__init__(message)
        self.needs_reboot = needs_reboot  # the driver is installed but not loaded: a reboot may load it


@dataclass(frozen=True)
class GPUReport:
    """What the VM's GPUs are, as the run record keeps it."""

    count: int  # GPUs visible
    models: list = field(default_factory=list)  # each GPU's name, e.g. "NVIDIA L4"
    driver: str = ""  # driver version, e.g. "550.90.07"
    cuda: str = ""  # highest CUDA version the driver supports, e.g. "12.4"
    probe: str = ""  # "nvml" or "nvidia-smi"

    def to_dict(self) -> dict:
        return asdict(self)


def cuda_version(value: int) -> str:
    """NVML's CUDA driver version integer as 'major.minor' (12040 -> '12.4')."""
    return f"{value // 1000}.{(value % 1000) // 10}"


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def probe_nvml() -> GPUReport | None:
    """The GPUs through NVML; None if nvidia-ml-py or libnvidia-ml is missing."""
    try:
        import pynvml  # GPU SDK: present on GPU VMs only
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        if isinstance(exc, getattr(pynvml, "NVMLError_LibraryNotFound", ())):
            return None
        loaded = not isinstance(exc, getattr(pynvml, "NVMLError_DriverNotLoaded", ()))
        raise GPUCheckError(f"NVML could not start: {exc}", needs_reboot=not loaded) from None
    try:
        count = pynvml.nvmlDeviceGetCount()
        models = [_text(pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))) for i in range(count)]
        return GPUReport(
            count=count,
            models=models,
            driver=_text(pynvml.nvmlSystemGetDriverVersion()),
            cuda=cuda_version(int(pynvml.nvmlSystemGetCudaDriverVersion())),
            probe="nvml",
        )
    except pynvml.NVMLError as exc:
        raise GPUCheckError(f"NVML could not read the GPUs: {exc}") from None
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def probe_smi() -> GPUReport | None:
    """The GPUs through nvidia-smi; None if it is not installed."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    query = subprocess.run(
        [smi, "--query-gpu=name,driver_version", "--format=csv,noheader"], capture_output=True, text=True, timeout=SMI_TIMEOUT
    )
    if query.returncode != 0:
        said = (query.stdout + query.stderr).strip().splitlines()
        raise GPUCheckError(
            f"nvidia-smi failed (exit {query.returncode}): {said[-1] if said else ''}",
            needs_reboot="driver" in (query.stdout + query.stderr).lower(),
        )
    rows = [[c.strip() for c in line.split(",")] for line in query.stdout.strip().splitlines() if line.strip()]
    header = subprocess.run([smi], capture_output=True, text=True, timeout=SMI_TIMEOUT).stdout
    cuda = re.search(r"CUDA Version:\s*([0-9.]+)", header)
    return GPUReport(
        count=len(rows),
        models=[r[0] for r in rows],
        driver=rows[0][1] if rows and len(rows[0]) > 1 else "",
        cuda=cuda.group(1) if cuda else "",
        probe="nvidia-smi",
    )


def check_gpus(expected: int, model: str | None = None) -> GPUReport | None:
    """The VM's GPUs if they are what the profile promises; None when it promises none."""
    if expected <= 0:
        return None
    report = probe_nvml() or probe_smi()
    if report is None:
        raise GPUCheckError(
            f"the profile promises {expected} GPU(s) but no NVIDIA driver is installed "
            "(no libnvidia-ml for NVML, no nvidia-smi); check the setup log, or the custom image"
        )
    if report.count < expected:
        raise GPUCheckError(f"the profile promises {expected} GPU(s), the driver sees {report.count}: {report.models}")
    if model and not all(model.lower() in m.lower() for m in report.models[:expected]):
        raise GPUCheckError(f"the profile promises {model} GPUs, the driver sees {report.models}")
    return report
