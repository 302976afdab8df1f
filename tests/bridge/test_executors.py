"""Lithops' executor classes and ``plot()`` (F27), against Lithops' own API.

Lithops (``lithops/executors.py``): ``LocalhostExecutor``, ``ServerlessExecutor`` and
``StandaloneExecutor`` subclass ``FunctionExecutor``, each taking ``config``,
``config_file``, ``storage``, ``monitoring``, ``log_level`` and ``**kwargs`` (the
latter two also ``backend``) and fixing ``mode`` ('serverless', 'standalone').
``plot(fs=None, dst=None, figsize=(10, 6))`` plots the futures that are done without
error into ``<realpath(dst)>_timeline.png`` and ``<realpath(dst)>_histogram.png``
(default ``./plots/<epoch>_timeline.png``), does nothing when none is, and needs
matplotlib (``lithops[plotting]``), raising ModuleNotFoundError without it.
"""

from __future__ import annotations

import inspect
import sys

import pytest

import lithops_bridge as lithops
from lithops_bridge.errors import ConfigError
from tests.bridge import funcs

PNG = b"\x89PNG\r\n\x1a\n"
LITHOPS_PARAMS = {  # the parameters of Lithops' own classes, in order, before **kwargs
    "LocalhostExecutor": ["config", "config_file", "storage", "monitoring", "log_level"],
    "ServerlessExecutor": ["config", "config_file", "backend", "storage", "monitoring", "log_level"],
    "StandaloneExecutor": ["config", "config_file", "backend", "storage", "monitoring", "log_level"],
}


@pytest.mark.parametrize("name", sorted(LITHOPS_PARAMS))
def test_the_executor_classes_take_lithops_parameters(name):
    cls = getattr(lithops, name)
    assert issubclass(cls, lithops.FunctionExecutor)
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD] == LITHOPS_PARAMS[name]
    assert params[-1].kind is inspect.Parameter.VAR_KEYWORD
    assert list(inspect.signature(lithops.FunctionExecutor.plot).parameters) == ["self", "fs", "dst", "figsize"]


def test_a_serverless_executor_says_what_runs_instead():
    with pytest.raises(ConfigError, match=r"lithops\.mode.*serverless.*StandaloneExecutor.*lithops-config"):
        lithops.ServerlessExecutor()
    with pytest.raises(ConfigError, match=r"lithops\.backend.*code_engine.*not supported"):
        lithops.ServerlessExecutor(backend="code_engine")


def test_standalone_executor_is_standalone_mode():
    with pytest.raises(ConfigError, match="standalone"):  # no run named: the standalone backend says what it needs
        lithops.StandaloneExecutor(config={"lithops": {"storage": "localhost"}})


@pytest.fixture
def local_exec():
    pytest.importorskip("matplotlib", reason="plot() needs matplotlib (the plotting extra; in the test extra for CI)")
    with lithops.LocalhostExecutor(worker_processes=2) as fexec:
        yield fexec


def test_plot_writes_the_timeline_and_histogram_where_lithops_does(local_exec, tmp_path):
    fs = local_exec.map(funcs.double, range(6))
    assert local_exec.get_result(fs) == [0, 2, 4, 6, 8, 10]
    local_exec.plot(dst=str(tmp_path / "out" / ".." / "run1"))
    for kind in ("timeline", "histogram"):
        assert (tmp_path / f"run1_{kind}.png").read_bytes()[:8] == PNG
    local_exec.plot()  # no dst: ./plots/<epoch seconds>_timeline.png in the working folder
    names = sorted(p.name for p in (tmp_path / "cwd" / "plots").iterdir())
    assert len(names) == 2 and names[0].endswith("_histogram.png") and names[1].endswith("_timeline.png")
    assert names[0].split("_")[0].isdigit()


def test_plot_skips_failed_futures_and_does_nothing_without_a_done_one(local_exec, tmp_path):
    bad = local_exec.call_async(funcs.raise_value_error, 1)
    with pytest.raises(Exception):
        local_exec.get_result([bad])
    local_exec.plot(fs=[bad], dst=str(tmp_path / "none"))
    assert not list(tmp_path.glob("none_*"))
    good = local_exec.call_async(funcs.double, 2)
    assert local_exec.get_result([good]) == [4] or local_exec.get_result([good]) == 4
    local_exec.plot(fs=good, dst=str(tmp_path / "one"))  # a single future, as Lithops takes it
    assert (tmp_path / "one_timeline.png").exists()


def test_plot_without_matplotlib_names_the_extra(local_exec, tmp_path, monkeypatch):
    local_exec.get_result(local_exec.map(funcs.double, [1]))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    with pytest.raises(ModuleNotFoundError, match=r"ephemera\[plotting\]"):
        local_exec.plot(dst=str(tmp_path / "x"))


@pytest.mark.slow
def test_standalone_executor_runs_on_the_vms_of_a_run(vms, config_for):
    with lithops.StandaloneExecutor(config=config_for("standalone")) as fexec:
        assert fexec.mode == "standalone"
        assert fexec.get_result(fexec.map(funcs.double, range(8))) == [0, 2, 4, 6, 8, 10, 12, 14]
