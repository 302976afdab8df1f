"""Issue 16, finding 4: the run bundle carries only code.

With ``workload.source: .`` next to a ``.ephemera.yaml`` holding an IAM API key and a
Slack URL, the bundle used to carry the config and its secrets, and a symlink to
``~/.aws/credentials`` was packed as its target's content. Bundles are kept for good
and installed on every VM."""

from __future__ import annotations

import base64
import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest
import yaml

from ephemera.bundle.pack import pack
from ephemera.assembly import load_config
from ephemera.errors import ConfigError

IAM_KEY = "Xk3-iam-apikey-0123456789abcdefABCDEF_zz"
SLACK_URL = "https://hooks.slack.com/services/T0000AAAA/B0000BBBB/s3cr3tS1ackT0kenXYZ"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def project(tmp_path, local_config):
    """A workload folder whose config (``.ephemera.yaml``, secrets in it) sits beside the code."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "train.py").write_text("def main(params):\n    return {'ok': True}\n")
    (folder / "requirements.txt").write_text("")
    data = local_config(
        workload={"source": ".", "entry": "train:main", "requirements": []},
        ibm={"iam_api_key": IAM_KEY},
        notify={"slack_webhook_url": SLACK_URL},
    )
    (folder / ".ephemera.yaml").write_text(yaml.safe_dump(data))
    return folder


def load(folder: Path, name: str = ".ephemera.yaml"):
    return load_config(str(folder / name))


def members(bundle_path: Path) -> dict[str, bytes]:
    with tarfile.open(bundle_path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_a_bundle_packed_beside_its_config_holds_neither_the_config_nor_a_secret(project, tmp_path):
    config = load(project)
    assert IAM_KEY in config.secret_values() and SLACK_URL in config.secret_values()
    bundle = pack(config, tmp_path / "out")
    files = members(bundle.path)
    assert "source/train.py" in files and "source/.ephemera.yaml" not in files
    assert bundle.manifest["source_files"] == ["requirements.txt", "train.py"]
    raw = gzip.decompress(bundle.path.read_bytes())
    for secret in (IAM_KEY, SLACK_URL):
        assert secret.encode() not in raw and base64.b64encode(secret.encode()) not in raw


def test_the_config_file_is_left_out_whatever_its_name(project, tmp_path):
    os.rename(project / ".ephemera.yaml", project / "prod-settings.yml")
    bundle = pack(load(project, "prod-settings.yml"), tmp_path / "out")
    assert bundle.manifest["source_files"] == ["requirements.txt", "train.py"]


def test_key_files_and_other_configs_are_ignored_by_default(project, tmp_path):
    for name in (
        ".env",
        ".env.local",
        "server.pem",
        "tls.key",
        "id_rsa",
        "id_ed25519.pub",
        ".netrc",
        ".aws/credentials",
        ".ssh/config",
        "ephemera.yaml",
        "terraform.tfstate",
    ):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text("not code\n")
    (project / "id_utils.py").write_text("X = 1\n")  # code whose name starts with id_ is still code
    bundle = pack(load(project), tmp_path / "out")
    assert bundle.manifest["source_files"] == ["id_utils.py", "requirements.txt", "train.py"]


def test_a_symlink_to_credentials_outside_the_source_is_refused_by_name(project, tmp_path):
    fake_home = tmp_path / "home-dir"
    (fake_home / ".aws").mkdir(parents=True)
    (fake_home / ".aws" / "credentials").write_text(f"[default]\naws_secret_access_key = {AWS_SECRET}\n")
    (project / "settings.ini").symlink_to(fake_home / ".aws" / "credentials")
    with pytest.raises(ConfigError) as err:
        pack(load(project), tmp_path / "out")
    assert err.value.field == "workload.source" and "'settings.ini'" in err.value.message
    assert "outside the source folder" in err.value.message and "workload.ignore" in err.value.message
    assert AWS_SECRET not in str(err.value) and not list((tmp_path / "out").glob("*.tar.gz"))


def test_a_symlinked_folder_or_a_dangling_link_is_refused(project, tmp_path):
    (project / "data").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(ConfigError, match="'data/' is a symlinked folder"):
        pack(load(project), tmp_path / "out")
    (project / "data").unlink()
    (project / "gone.py").symlink_to(project / "nowhere.py")
    with pytest.raises(ConfigError, match="'gone.py' is a symlink to no regular file"):
        pack(load(project), tmp_path / "out")


def test_a_symlink_inside_the_source_is_packed_as_its_content(project, tmp_path):
    (project / "lib").mkdir()
    (project / "lib" / "helpers.py").write_text("def f():\n    return 1\n")
    (project / "helpers.py").symlink_to(project / "lib" / "helpers.py")
    files = members(pack(load(project), tmp_path / "out").path)
    assert files["source/helpers.py"] == files["source/lib/helpers.py"] == b"def f():\n    return 1\n"


def test_a_link_to_the_config_file_is_not_a_way_in(project, tmp_path):
    (project / "notes.txt").symlink_to(project / ".ephemera.yaml")
    bundle = pack(load(project), tmp_path / "out")
    assert "notes.txt" not in bundle.manifest["source_files"]


@pytest.mark.parametrize(
    "encode",
    [
        lambda s: s,
        lambda s: base64.b64encode(s.encode()).decode(),
        lambda s: "prefix" + base64.b64encode(b"ab" + s.encode()).decode(),  # at another alignment
        lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
        lambda s: __import__("urllib.parse").parse.quote(s, safe=""),
        lambda s: __import__("json").dumps({"k": s}),
    ],
    ids=["raw", "base64", "base64-shifted", "urlsafe", "url", "json"],
)
@pytest.mark.parametrize("secret", [IAM_KEY, SLACK_URL], ids=["iam", "slack"])
def test_a_source_file_holding_a_secret_in_any_encoding_refuses_packing(project, tmp_path, encode, secret):
    (project / "client.py").write_text(f"TOKEN = {encode(secret)!r}\n")
    with pytest.raises(ConfigError) as err:
        pack(load(project), tmp_path / "out")
    assert err.value.field == "workload.source" and "'client.py'" in err.value.message
    assert secret not in str(err.value) and not list((tmp_path / "out").glob("*.tar.gz"))


def test_a_secret_in_a_binary_file_or_a_requirement_is_found_too(project, tmp_path, local_config):
    (project / "blob.bin").write_bytes(b"\x00\xff" + IAM_KEY.encode() + b"\x80")
    with pytest.raises(ConfigError, match="'blob.bin'"):
        pack(load(project), tmp_path / "out")
    (project / "blob.bin").unlink()
    data = yaml.safe_load((project / ".ephemera.yaml").read_text())
    data["workload"]["requirements"] = [f"private @ https://x:{IAM_KEY}@example.invalid/p.whl"]
    (project / ".ephemera.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        pack(load(project), tmp_path / "out")
    assert err.value.field == "workload.requirements" and IAM_KEY not in str(err.value)


def test_the_example_packs_without_its_config(tmp_path, home):
    example = Path(__file__).resolve().parents[2] / "examples" / "train-digits"
    bundle = pack(load_config(str(example / "ephemera.yaml")), tmp_path / "out")
    assert "ephemera.yaml" not in bundle.manifest["source_files"] and "train.py" in bundle.manifest["source_files"]
    assert io.BytesIO(bundle.path.read_bytes()).getbuffer().nbytes == bundle.size
