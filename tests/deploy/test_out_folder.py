"""Finding 14 of issue 16: ``deploy --dry-run --out DIR`` chmodded an existing DIR to
0700 (``--out /tmp`` as root breaks the host), and ``plan.sh`` was written through a
symbolic link. Now a folder others can write is refused before anything is written and
keeps its mode, and ``plan.sh`` is never written through a link. (The whole dry run into
a new or an existing folder of ours is in test_cli.py, which builds the packages.)"""

from __future__ import annotations

import argparse
import io
import os
import stat

import pytest

from ephemera.cli import deploy as cli
from ephemera.deploy.steps import Step
from ephemera.files import UnsafePathError


@pytest.mark.parametrize("target", ["openwhisk", "code-engine"])
def test_out_naming_a_shared_folder_is_refused_and_its_mode_kept(example_path, tmp_path, capsys, target):
    shared = tmp_path / "tmp"  # like /tmp: world-writable, sticky
    shared.mkdir()
    os.chmod(shared, 0o1777)
    assert cli.main([target, "--dry-run", "--config", str(example_path), "--out", str(shared)], out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert "--out" in err and str(shared) in err and "written by others" in err
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o1777 and list(shared.iterdir()) == []


def test_out_through_a_symlink_to_a_shared_folder_is_refused(example_path, tmp_path, capsys):
    shared = tmp_path / "tmp"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    (tmp_path / "out").symlink_to(shared)
    assert (
        cli.main(["openwhisk", "--dry-run", "--config", str(example_path), "--out", str(tmp_path / "out")], out=io.StringIO())
        == 2
    )
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o1777 and list(shared.iterdir()) == []


def test_plan_sh_is_not_written_through_a_symlink(tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("someone's file")
    (out_dir / "plan.sh").symlink_to(victim)
    args = argparse.Namespace(dry_run=True, target="openwhisk")
    steps = [Step("a package", ["wsk", "package", "update", "ephemera"])]
    with pytest.raises(UnsafePathError, match="symbolic link"):
        cli._finish(steps, args, io.StringIO(), None, out_dir, out_dir / "params.json", [])
    assert victim.read_text() == "someone's file"
    (out_dir / "plan.sh").unlink()
    assert cli._finish(steps, args, io.StringIO(), None, out_dir, out_dir / "params.json", []) == 0
    script = out_dir / "plan.sh"
    assert stat.S_IMODE(script.stat().st_mode) == 0o700 and "wsk package update ephemera" in script.read_text()
