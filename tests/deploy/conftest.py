"""The example config of examples/ibm-cloud.yaml with test secrets, and plan helpers."""

from __future__ import annotations

import copy
import shlex
from pathlib import Path

import pytest
import yaml

from ephemera.assembly import load_config

REPO = Path(__file__).resolve().parents[2]
SECRET_VALUES = ("HMACID-4c1d-secret-id", "HMACSECRET-9f8e-secret", "APIKEY-7Hq2-secret")


def example() -> dict:
    """examples/ibm-cloud.yaml, with test values in place of its REPLACE placeholders."""
    data = yaml.safe_load((REPO / "examples" / "ibm-cloud.yaml").read_text())
    data["ibm_cos"].update(access_key_id=SECRET_VALUES[0], secret_access_key=SECRET_VALUES[1])
    data["ibm"]["iam_api_key"] = SECRET_VALUES[2]
    return data


def config_with(**sections):
    """The example config with sections replaced (``triggers=[...]``) or merged (dicts)."""
    data = copy.deepcopy(example())
    for name, value in sections.items():
        data[name] = {**data.get(name, {}), **value} if isinstance(value, dict) else value
    return load_config(data)


def commands(text: str) -> list[list[str]]:
    """Every command of a printed plan, split; conditions and comments dropped."""
    cmds = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removesuffix("\\").strip().removesuffix("&&").removesuffix("||").removesuffix(";").strip()
        line = line.replace(">/dev/null 2>&1", "").strip()
        cmds.append(shlex.split(line))
    return cmds


def flag(cmd: list[str], name: str, nth: int = 0) -> str:
    """The value after the ``nth`` occurrence of ``name`` in a command."""
    at = [i for i, word in enumerate(cmd) if word == name][nth]
    return cmd[at + 1]


def values(cmd: list[str], name: str) -> dict[str, str]:
    """``name KEY VALUE`` pairs of a command (wsk's --param / --feed-param / --trigger-param)."""
    return {cmd[i + 1]: cmd[i + 2] for i, word in enumerate(cmd) if word == name}


@pytest.fixture
def example_path(tmp_path, s3_endpoint, unique_bucket) -> Path:
    """The example as a file, its COS endpoint a local S3 server with a fresh state bucket
    (a deploy publishes the run bundle there)."""
    from ephemera.assembly import get_storage

    data = example()
    data["ibm_cos"]["endpoint"] = s3_endpoint
    data["storage"]["bucket"] = unique_bucket
    data["home"] = str(tmp_path / "home")
    get_storage(data).create_bucket(unique_bucket)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def config(local_config) -> dict:
    """A local config of the deployed entry points' tests: the smoke workload, one param
    (``folds``) a remote request may set, its state bucket made."""
    from ephemera.context import Context

    cfg = local_config(
        engine={"backend": "terraform"},
        workload={"entry": "ephemera.workloads.smoke:main", "output_prefix": "outputs", "remote_params": ["folds"]},
    )
    Context(cfg).storage.create_bucket(cfg["storage"]["bucket"])
    return cfg
