"""Shared fixtures: an isolated Ephemera home per test, and config builders; the
Hypothesis profiles."""

from __future__ import annotations

import pytest
from hypothesis import settings

pytest_plugins = ["tests.fakes.fixtures"]

# `make test` on a developer's machine explores new examples on every run; CI
# (`.ci/run`: --hypothesis-profile=ci) runs one fixed, derandomized set, the same as
# `pytest --hypothesis-profile=ci` runs here, so a case found by chance on a laptop
# becomes an @example instead of a landing failed by chance.
settings.register_profile("ci", derandomize=True)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items) -> None:
    """``slow`` tests first, each kind in its collected order. pytest-xdist hands tests
    (or whole groups) to idle workers in this order: minute-long tests started first
    overlap with each other and with the many short ones, instead of one of them
    starting last and running alone while the other workers idle."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh EPHEMERA_HOME; child processes inherit it."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("EPHEMERA_HOME", str(path))
    monkeypatch.delenv("EPHEMERA_CONFIG_FILE", raising=False)
    return path


@pytest.fixture
def local_config(home):
    """Build a local-mode config dict; keyword sections are merged over the defaults."""

    def build(**sections):
        base = {
            "home": str(home),
            "storage": {"backend": "localhost", "bucket": "ephemera-test"},
            "localhost": {"root": str(home / "storage")},
            "workspace": {"name": "ws", "stack": "local"},
            "workload": {"entry": "ephemera.workloads.smoke:main", "output_prefix": "outputs"},
            "timeouts": {"hard": "10m", "soft": "2m", "action": "2m"},
        }
        for name, value in sections.items():
            base[name] = {**base.get(name, {}), **value} if isinstance(value, dict) else value
        return base

    return build


@pytest.fixture
def no_index(tmp_path, monkeypatch):
    """A controller that cannot reach a package index, with nothing cached: uv offline
    (``UV_OFFLINE``), pip without an index, empty uv and Ephemera caches."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "cache" / "uv"))
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
