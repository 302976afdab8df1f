"""write_private: files holding secrets are owner-only, whole, and never left half-written."""

from __future__ import annotations

import os
import stat

from ephemera.files import write_private


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
