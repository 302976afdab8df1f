"""write_private: files holding secrets are owner-only, whole, never left half-written and
never written through a symbolic link; private_dir: a folder made 0700, or one of ours as it is."""

from __future__ import annotations

import os
import stat

import pytest

from ephemera.files import UnsafePathError, private_dir, write_private


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_text_and_bytes_are_written_owner_only(tmp_path):
    text_path = write_private(tmp_path / "deep" / "er" / "params.json", '{"secret": "x"}')
    assert text_path.read_text() == '{"secret": "x"}' and _mode(text_path) == 0o600
    raw = write_private(str(tmp_path / "blob.bin"), b"\x00\x01secret")
    assert raw.read_bytes() == b"\x00\x01secret" and _mode(raw) == 0o600


def test_an_existing_readable_file_is_replaced_by_a_private_one(tmp_path):
    path = tmp_path / "agent.json"
    path.write_text("old, world-readable")
    os.chmod(path, 0o644)
    write_private(path, "new")
    assert path.read_text() == "new" and _mode(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent.json"]  # no temp file left


# Finding 14 of issue 16: files written by the CLI followed symbolic links, and
# `deploy --dry-run --out DIR` chmodded an existing DIR to 0700.


def test_a_symlink_at_the_name_is_refused_and_its_target_untouched(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("someone's file")
    os.chmod(victim, 0o644)
    link = tmp_path / "plan.sh"
    link.symlink_to(victim)
    with pytest.raises(UnsafePathError) as err:
        write_private(link, "#!/bin/sh\nrm -rf ~\n", mode=0o700)
    assert str(link) in err.value.message and "symbolic link" in err.value.message
    assert victim.read_text() == "someone's file" and _mode(victim) == 0o644 and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.sh", "victim"]  # no temp file left


def test_a_link_planted_after_the_check_is_replaced_not_followed(tmp_path, monkeypatch):
    """rename(2) replaces the name itself: a link that appears between the check and the
    rename is what gets replaced, never the file it points to."""
    victim = tmp_path / "victim"
    victim.write_text("someone's file")
    path = tmp_path / "lithops.yaml"
    real_replace = os.replace

    def plant_then_replace(src, dst):
        os.symlink(victim, dst)  # the race, won by the attacker
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", plant_then_replace)
    write_private(path, "secret: x")
    assert victim.read_text() == "someone's file"
    assert not path.is_symlink() and path.read_text() == "secret: x" and _mode(path) == 0o600


def test_a_script_is_written_0700(tmp_path):
    assert _mode(write_private(tmp_path / "plan.sh", "#!/bin/sh\n", mode=0o700)) == 0o700
    with pytest.raises(ValueError):
        write_private(tmp_path / "open.sh", "x", mode=0o755)


def test_private_dir_creates_a_missing_folder_0700(tmp_path):
    made = private_dir(tmp_path / "a" / "out", "--out")
    assert made.is_dir() and _mode(made) == 0o700


def test_private_dir_keeps_an_existing_folder_of_ours_as_it_is(tmp_path):
    mine = tmp_path / "build"
    mine.mkdir()
    os.chmod(mine, 0o755)
    assert private_dir(mine, "--out") == mine and _mode(mine) == 0o755  # never chmodded


def test_private_dir_refuses_a_folder_others_can_write_and_leaves_its_mode(tmp_path):
    """``--out /tmp``: a world-writable sticky folder is refused and keeps its mode 1777."""
    shared = tmp_path / "tmp"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    with pytest.raises(UnsafePathError) as err:
        private_dir(shared, "--out")
    assert "--out" in err.value.message and "written by others" in err.value.message
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o1777


def test_private_dir_refuses_a_file_and_another_users_folder(tmp_path, monkeypatch):
    plain = tmp_path / "file"
    plain.write_text("x")
    with pytest.raises(UnsafePathError, match="not a folder"):
        private_dir(plain, "--out")
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(theirs).st_uid + 1)  # as if another user owned it
    with pytest.raises(UnsafePathError, match="another user"):
        private_dir(theirs, "--out")
    assert _mode(theirs) == 0o755
