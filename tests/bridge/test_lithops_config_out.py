"""Finding 14 of issue 16: ``ephemera lithops-config --out`` wrote through a symbolic
link (``os.open(..., O_TRUNC)`` followed it). Now a link at any target name is refused
before any config is written, and the files are written 0600 atomically."""

from __future__ import annotations

import os
import stat

from ephemera.cli.lithops_config import main
from ephemera.assembly import load_config
from ephemera.model.ledger import Ledger
from ephemera.model.runs import RunRecord
from ephemera.assembly import get_storage


def _config_with_run(tmp_path, workers=(0, 1)) -> dict:
    cfg = {
        "home": str(tmp_path / "home"),
        "storage": {"backend": "localhost", "bucket": "state-bucket"},
        "localhost": {"root": str(tmp_path / "storage")},
    }
    config = load_config(cfg)
    storage = get_storage(config)
    storage.create_bucket(config.state_bucket)
    agents = [{"worker": w, "pid": 100 + w, "pid_file": f"/x/{w}.pid", "log_file": f"/x/{w}.log"} for w in workers]
    Ledger(storage, config.state_bucket).create(
        RunRecord(run_id="run-1", workspace="ws", engine="terraform", outputs={"agents": agents})
    )
    return cfg


def test_a_symlink_at_an_out_name_is_refused_and_nothing_written(tmp_path, capsys):
    cfg = _config_with_run(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("someone's file")
    os.chmod(victim, 0o644)
    (out / "lithops-vm1.yaml").symlink_to(victim)
    assert main(cfg, "run-1", str(out / "lithops.yaml")) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "lithops-vm1.yaml" in err and "symbolic link" in err
    assert victim.read_text() == "someone's file" and stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert sorted(p.name for p in out.iterdir()) == ["lithops-vm1.yaml"]  # vm0's was not written either


def test_out_files_are_written_0600(tmp_path):
    cfg = _config_with_run(tmp_path, workers=(0,))
    target = tmp_path / "cfg" / "lithops.yaml"
    assert main(cfg, "run-1", str(target)) == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and "consume" in target.read_text()
