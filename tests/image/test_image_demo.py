"""``make demo`` uses the prepared path when one exists: ``ephemera image build --demo``
builds the image of the demo's workload in the user's own Ephemera home, and ``ephemera
demo`` (a fresh home each time) starts its VM from it; without one, or with a record that
does not name the user's image store, the demo installs the stock way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ephemera import cli
from ephemera.bundle.image import IMAGES_DIR, local_lock, lock_sha256
from ephemera.cli.demo import adopt_image, demo_config, run_demo
from ephemera.context import Context


def _demo_ctx(tmp_path: Path) -> tuple[Context, dict]:
    demo_home = tmp_path / "demo"
    demo_home.mkdir()
    raw = demo_config(demo_home)
    return Context(raw), raw


def test_without_an_image_in_the_users_home_the_demo_installs_the_stock_way(home, tmp_path):
    ctx, raw = _demo_ctx(tmp_path)
    assert adopt_image(ctx, raw, home) is None
    assert not (Path(raw["home"]) / IMAGES_DIR).exists()


def test_a_record_naming_a_folder_outside_the_users_store_is_not_adopted(home, tmp_path):
    """The record copy beside the image folder is the user's own file, but the demo still
    takes only a record naming exactly its lock's folder in the user's image store."""
    ctx, raw = _demo_ctx(tmp_path)
    sha = lock_sha256(local_lock([], None))
    store = home / IMAGES_DIR / "local"
    store.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    record = {
        "format": 1, "id": f"local-{sha[:12]}", "kind": "local", "stack": "local", "lock_sha256": sha,
        "built_at": "2026-01-01T00:00:00Z", "python": "python", "size": 1,
        "path": str(elsewhere), "site": "env/lib/site-packages", "digest": "0" * 64,
    }  # fmt: skip
    (store / f"{sha}.json").write_text(json.dumps(record))
    assert adopt_image(ctx, raw, home) is None
    (store / f"{sha}.json").write_text("not a record")
    assert adopt_image(ctx, raw, home) is None
    assert not (Path(raw["home"]) / IMAGES_DIR).exists()


def test_image_demo_refuses_a_config(home, capsys):
    assert cli.main(["image", "build", "--demo", "--config", str(home / "x.yaml")]) != 0
    assert "--demo" in capsys.readouterr().err


@pytest.mark.slow  # builds the image, runs the whole demo (runtime, apply, agent, destroy)
@pytest.mark.timeout(900)
def test_the_demo_starts_from_the_image_built_for_it(home, tmp_path, capsys, monkeypatch):
    assert cli.main(["image", "build", "--demo"]) == 0
    built = capsys.readouterr().out
    image_id = built.split()[1]
    assert image_id.startswith("local-") and str(home / IMAGES_DIR) in built

    demo_home = tmp_path / "demo"
    assert run_demo(home=str(demo_home), timeout=600) == 0
    out = capsys.readouterr().out
    assert f"starts from the prepared image {image_id}" in out
    runs = list(Context(demo_config(demo_home)).ledger.list())
    assert len(runs) == 1 and runs[0].bundle["image"] == image_id
    # the demo's VM used the user's image folder, through the demo home's link to the store
    assert (demo_home / IMAGES_DIR).resolve() == (home / IMAGES_DIR).resolve()

    monkeypatch.setenv("EPHEMERA_HOME", str(home))  # the demo pointed it at its own home
    assert cli.main(["image", "delete", image_id, "--demo"]) == 0
    assert not list((home / IMAGES_DIR / "local").iterdir())
