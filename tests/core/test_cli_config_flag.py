"""``--config FILE`` names the one config a command reads, written before or after the
subcommand, for every subcommand; ``ephemera --config X deploy ...`` deploys X and
nothing else (not ``$EPHEMERA_CONFIG_FILE``), and ``ephemera deploy --help`` is help."""

from __future__ import annotations

import pytest
import yaml

from ephemera import cli
from ephemera.cli import deploy as deploy_cli


@pytest.fixture
def two_configs(tmp_path):
    """Two config files with different state buckets, and $EPHEMERA_CONFIG_FILE naming a third."""
    paths = {}
    for name in ("named", "other"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"home": str(tmp_path / "home"), "storage": {"bucket": f"bucket-{name}"}}))
        paths[name] = path
    return paths


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "{named}", "config"],
        ["config", "--config", "{named}"],
        ["config", "-c", "{named}"],
        ["-c", "{named}", "config", "--config", "{named}"],  # the same file twice is one file
    ],
)
def test_config_flag_in_any_position(argv, two_configs, monkeypatch, capsys):
    monkeypatch.setenv("EPHEMERA_CONFIG_FILE", str(two_configs["other"]))
    assert cli.main([a.format(named=two_configs["named"]) for a in argv]) == 0
    printed = capsys.readouterr().out
    assert f"# source: {two_configs['named']}" in printed and "bucket-named" in printed and "bucket-other" not in printed


# the fewest arguments each subcommand needs; a new subcommand must be added here
MINIMAL = {
    "demo": [],
    "up": [],
    "runs": [],
    "logs": ["r"],
    "plan": [],
    "dashboard": [],
    "activations": [],
    "invoke": ["status"],
    "config": [],
    "bundle": ["pack"],
    "lithops-config": ["r"],
    "outputs": ["r"],
    "image": ["list"],
}


def test_every_subcommand_takes_config_after_it():
    parser = cli.build_parser()
    names = set(parser._subparsers._group_actions[0].choices) - {"deploy"}  # type: ignore[union-attr]
    assert names == set(MINIMAL), "give the new subcommand its minimal arguments in MINIMAL"
    for name, rest in MINIMAL.items():
        args = parser.parse_args([name, *rest, "--config", "f.yaml"])
        assert args.sub_config == "f.yaml", name


def test_two_different_config_files_are_refused(two_configs, capsys):
    code = cli.main(["--config", str(two_configs["named"]), "config", "--config", str(two_configs["other"])])
    assert code == 2
    err = capsys.readouterr().err
    assert "--config" in err and "two different files" in err and "write --config once" in err


def test_demo_refuses_a_config_it_would_not_read(capsys):
    assert cli.main(["demo", "--config", "x.yaml"]) == 2
    assert "the demo writes its own config" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "{named}", "deploy", "code-engine", "--dry-run"],
        ["deploy", "--config", "{named}", "code-engine", "--dry-run"],
        ["deploy", "code-engine", "--dry-run", "--config", "{named}"],
        ["-c{named}", "deploy", "openwhisk", "--dry-run"],
    ],
)
def test_deploy_deploys_the_named_config_and_no_other(argv, two_configs, monkeypatch, capsys):
    """What was reported: ``ephemera --config X deploy ...`` planned a deploy of
    ``$EPHEMERA_CONFIG_FILE``. The deploy is reached with X, and says which file it deploys."""
    seen = []
    monkeypatch.setenv("EPHEMERA_CONFIG_FILE", str(two_configs["other"]))
    monkeypatch.setattr(deploy_cli, "deploy_code_engine", lambda args, out, runner=None: seen.append(args.config) or 0)
    monkeypatch.setattr(deploy_cli, "deploy_openwhisk", lambda args, out, runner=None: seen.append(args.config) or 0)
    assert cli.main([a.format(named=two_configs["named"]) for a in argv]) == 0
    assert seen == [str(two_configs["named"])]
    assert f"# config: {two_configs['named']}" in capsys.readouterr().out


def test_deploy_refuses_two_configs(two_configs, capsys):
    assert cli.main(["--config", str(two_configs["named"]), "deploy", "code-engine", "--config", str(two_configs["other"])]) == 2
    assert "two different files" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["deploy", "--help"], ["deploy", "-h"], ["deploy", "code-engine", "--help"]])
def test_deploy_help_is_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ephemera deploy") and "--config" in out
