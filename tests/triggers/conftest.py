"""Fixtures: a fresh home and localhost storage per test, a config factory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ephemera.assembly import load_config
from ephemera.storage.localhost.backend import LocalhostStorage

SECRET = "s3cr3t-VALUE-never-shown-9f2c"
KEY_ID = "AKIATESTKEYID77"


@pytest.fixture(autouse=True)
def _no_home_env(monkeypatch):
    monkeypatch.delenv("EPHEMERA_HOME", raising=False)
    monkeypatch.delenv("EPHEMERA_CONFIG_FILE", raising=False)


@pytest.fixture
def make_config(tmp_path):
    """make_config(**sections) -> Config on localhost storage under tmp_path, with
    AWS secrets set (unused by localhost storage) so scrubbing can be checked."""

    def make(**sections):
        raw = {
            "home": str(tmp_path / "home"),
            "localhost": {"root": str(tmp_path / "storage")},
            "storage": {"bucket": "state"},
            "aws_s3": {"access_key_id": KEY_ID, "secret_access_key": SECRET},
        }
        raw.update(sections)
        return load_config(raw)

    return make


@pytest.fixture
def storage(tmp_path) -> LocalhostStorage:
    return LocalhostStorage(tmp_path / "storage")


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
