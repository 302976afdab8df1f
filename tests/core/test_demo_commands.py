"""The commands the demo prints can be pasted as they are (F13): after ``make demo`` the
virtualenv's ``ephemera`` is not on PATH, so the demo prints its path instead of a bare
``ephemera`` that the shell would not find."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ephemera.cli.demo import command_name

MINE = Path(sys.prefix) / "bin" / "ephemera"


@pytest.mark.skipif(not MINE.exists(), reason="runs in a virtualenv with the ephemera script installed")
def test_the_printed_command_is_one_the_shell_finds(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # a fresh shell after `make demo`: the venv is not activated
    monkeypatch.chdir(tmp_path)
    assert command_name() == str(MINE)
    monkeypatch.chdir(Path(sys.prefix).parent)  # from the checkout, as the Makefile runs it
    assert command_name() == "./" + MINE.relative_to(Path(sys.prefix).parent).as_posix()
    monkeypatch.setenv("PATH", f"{MINE.parent}:/usr/bin:/bin")  # activated: the bare name is this one
    assert command_name() == "ephemera"
