"""The user's own results first: the outcome of a run (not its grey DESTROYED), what its
workload returned, its output objects (`ephemera outputs`, `--get DIR`) and, on
failure, the workload's traceback with its file and line -- in `runs show`, in
`ephemera logs` (which defaults to the workload's and agent's lines) and on the
dashboard's run page."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap

import pytest

from ephemera.cli import main
from ephemera.cli.outputs import fetch, show_outputs, unsafe_name
from ephemera.cli.results import CANCELLED, OutputObject, outcome, output_objects
from ephemera.cli.runs import run_details, runs_table
from ephemera.context import Context
from ephemera.errors import ParamError
from ephemera.lifecycle.activities import finish_run
from ephemera.model.jobs import JobSpec
from ephemera.model.runs import RunRecord, RunState
from ephemera.secrets import Scrubber
from ephemera.vm.workload import run_job

S = RunState
SECRET = "results-secret-93be1d"


@pytest.fixture
def ctx(local_config):
    context = Context(local_config(ibm={"iam_api_key": SECRET}))
    context.storage.create_bucket(context.config.state_bucket)
    return context


@pytest.fixture
def workload(tmp_path, monkeypatch):
    """A user's workload module, outside the repository, on the path like a bundle's source."""
    folder = tmp_path / "own-code"
    folder.mkdir()
    (folder / "mywork.py").write_text(
        textwrap.dedent(f"""\
        def main(ctx):
            ctx.put_output("metrics.json", '{{"accuracy": 0.97}}')
            ctx.put_output("plots/loss.svg", "<svg/>")
            return {{"accuracy": 0.97, "folds": 5}}


        def parse(row):
            return int(row)  # line 8: the user's own bug


        def broken(ctx):
            ctx.put_output("partial.csv", "a,b")
            return parse("{SECRET} not a number")
        """)
    )
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop("mywork", None)  # each test imports its own copy, from its own folder
    yield folder
    sys.modules.pop("mywork", None)


def _run(ctx, run_id: str, entry: str) -> RunRecord:
    """A run that applied, ran ``entry`` as a VM does (its marker written to storage), and
    whose marker was recorded as the destroy action records it."""
    job = JobSpec(
        run_id=run_id,
        workspace="ws",
        entry=entry,
        params={},
        state_bucket=ctx.config.state_bucket,
        output_bucket=ctx.config.state_bucket,
        output_prefix=f"outputs/{run_id}/",
    )
    ctx.ledger.create(
        RunRecord(run_id=run_id, workspace="ws", engine="terraform", job=job, event={"kind": "alarm", "trigger": "nightly"})
    )
    for state in (S.APPLYING, S.RUNNING):
        ctx.ledger.transition(run_id, state, "test")
    marker = run_job(job, ctx.storage, 0, Scrubber([SECRET]))
    finish_run(ctx, run_id, marker.succeeded, marker)
    return ctx.ledger.get(run_id)


def _destroy(ctx, run_id: str) -> RunRecord:
    for state in (S.DESTROYING, S.DESTROYED):
        ctx.ledger.transition(run_id, state, "test")
    return ctx.ledger.get(run_id)


def test_runs_show_leads_with_outcome_result_and_output_objects(ctx, workload):
    run = _destroy(ctx, _run(ctx, "ok-1", "mywork:main").run_id)
    text = run_details(ctx, run)
    head = text.split("\ntimeline:")[0]
    assert "outcome: SUCCEEDED  (resources: DESTROYED)" in head
    assert '"accuracy": 0.97' in head and '"folds": 5' in head
    assert "metrics.json" in head and "plots/loss.svg" in head and "_SUCCESS.json" in head
    assert "file://" in head  # localhost storage presigns as a file path: a link the user can open
    assert (
        text.index("outcome:") < text.index("timeline:") < text.index("Terraform outputs")
        if "Terraform outputs" in text
        else True
    )
    row = [line for line in runs_table(ctx).splitlines() if line.startswith("ok-1")][0]
    assert "SUCCEEDED" in row and "DESTROYED" in row


def test_a_failed_workloads_traceback_names_the_users_file_and_line(ctx, workload):
    """F7: the traceback was only in _FAILURE.json. `runs show` prints it (file, line),
    the message masked of the config's secrets."""
    run = _destroy(ctx, _run(ctx, "bad-1", "mywork:broken").run_id)
    assert outcome(run) == "FAILED"
    text = run_details(ctx, run)
    assert "outcome: FAILED  (resources: DESTROYED)" in text
    assert "workload traceback:" in text
    assert f'File "{workload / "mywork.py"}", line 8, in parse' in text
    assert "ValueError: invalid literal for int()" in text
    assert "partial.csv" in text.split("\ntimeline:")[0]
    assert SECRET not in text


def test_ephemera_logs_prints_the_traceback_and_defaults_to_workload_and_agent(ctx, workload, capsys):
    """F7 and "logs default to the workload's and agent's lines": the workload's own
    traceback (from its failure marker: its log has the message alone) is among the
    default lines; boot (pip) lines wait behind --all."""
    from ephemera.cli.logs import show_logs
    from ephemera.vm.logship import LogShipper

    run = _run(ctx, "bad-2", "mywork:broken")
    ship = LogShipper(ctx.storage, ctx.config.state_bucket, run.run_id, 0, ctx.scrubber)
    ship.add("workload", "2026-12-02T10:00:01.000+00:00 ERROR run bad-2: workload failed: ValueError: invalid literal")
    ship.add("boot", "2026-12-02T10:00:00.000+00:00 pip install: Collecting numpy")
    ship.flush()
    args = argparse.Namespace(run_id=run.run_id, follow=False, worker=None, source=None, since=None, all=False)
    out: list[str] = []
    show_logs(ctx, args, out.append)
    printed = "\n".join(out)
    assert "the workload failed (its failure marker)" in printed and "line 8, in parse" in printed
    assert "Collecting numpy" not in printed and SECRET not in printed
    assert "1 engine and boot lines" in out[-1] and "--all" in out[-1]
    out.clear()
    show_logs(ctx, argparse.Namespace(**{**vars(args), "all": True}), out.append)
    assert "Collecting numpy" in "\n".join(out) and "--all" not in out[-1]
    out.clear()
    show_logs(ctx, argparse.Namespace(**{**vars(args), "source": ["agent"]}), out.append)
    assert "line 8, in parse" not in "\n".join(out)  # asked for the agent's lines alone


def test_outcome_badges_say_how_the_work_went_not_where_the_vms_are(ctx, workload):
    """F20: every destroyed row wore the same grey DESTROYED badge."""
    ok = _destroy(ctx, _run(ctx, "o-ok", "mywork:main").run_id)
    bad = _destroy(ctx, _run(ctx, "o-bad", "mywork:broken").run_id)
    ctx.ledger.create(RunRecord(run_id="o-cut", workspace="ws", engine="terraform"))
    for state in (S.APPLYING, S.RUNNING, S.DESTROYING, S.DESTROYED):  # destroyed by hand mid-workload
        ctx.ledger.transition("o-cut", state, "test")
    ctx.ledger.create(RunRecord(run_id="o-up", workspace="ws", engine="terraform"))
    ctx.ledger.transition("o-up", S.APPLYING, "test")
    assert [outcome(r) for r in (ok, bad, ctx.ledger.get("o-cut"), ctx.ledger.get("o-up"))] == [
        "SUCCEEDED",
        "FAILED",
        CANCELLED,
        "APPLYING",
    ]


def test_ephemera_outputs_lists_and_fetches(ctx, workload, tmp_path, capsys, monkeypatch):
    """F21: `ephemera outputs RUN` lists name, size, link; `--get DIR` writes them there."""
    run = _run(ctx, "out-1", "mywork:main")
    path = tmp_path / "config.yaml"
    import yaml

    path.write_text(yaml.safe_dump(ctx.config.to_dict(redact=False)))
    assert main(["--config", str(path), "outputs", run.run_id]) == 0
    listed = capsys.readouterr().out
    assert "3 object(s) under" in listed and "metrics.json" in listed and "plots/loss.svg" in listed and "LINK" in listed
    got = tmp_path / "got"
    assert main(["--config", str(path), "outputs", run.run_id, "--get", str(got)]) == 0
    assert (got / "metrics.json").read_text() == '{"accuracy": 0.97}'
    assert (got / "plots" / "loss.svg").read_text() == "<svg/>"
    assert "fetched 3 object(s)" in capsys.readouterr().out


def test_outputs_fetch_in_ranges_keeps_large_objects_whole(ctx, workload, tmp_path, monkeypatch):
    import ephemera.cli.outputs as outputs

    run = _run(ctx, "big-1", "mywork:main")
    body = os.urandom(10_000)
    ctx.storage.put(run.job.output_bucket, run.job.output_prefix + "blob.bin", body)
    monkeypatch.setattr(outputs, "CHUNK", 4096)
    _, _, objects = output_objects(ctx, run, links=False)
    fetch(ctx.storage, run.job.output_bucket, objects, str(tmp_path / "d"))
    assert (tmp_path / "d" / "blob.bin").read_bytes() == body


@pytest.mark.parametrize(
    "name", ["../escape.txt", "a/../../escape.txt", "/etc/passwd", "a//b", "./x", "a\\..\\x", "a\x1b[2Jb", ""]
)
def test_names_that_would_leave_the_folder_are_refused(name):
    assert unsafe_name(name) is not None


def test_a_planted_key_that_would_escape_stops_the_whole_fetch(local_config, s3_endpoint, unique_bucket, workload, tmp_path):
    """Attack: whoever can write the run's output prefix -- its VMs, so the workload and
    every package it installed, with the run's own S3 keys and a plain S3 client -- plants
    `outputs/<run>/../../escape.sh` (S3 keys are strings: `..` means nothing to S3). The
    fetch is refused naming the key, and nothing at all is written, not even the good
    objects."""
    import boto3

    s3 = {"endpoint": s3_endpoint, "region": "us-east-1", "access_key_id": "testing", "secret_access_key": "testing-secret-xyz"}
    ctx = Context(local_config(storage={"backend": "aws_s3", "bucket": unique_bucket}, aws_s3=s3))
    ctx.storage.create_bucket(unique_bucket)
    run = _run(ctx, "evil-1", "mywork:main")
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing-secret-xyz",
    )
    client.put_object(Bucket=unique_bucket, Key=run.job.output_prefix + "../../escape.sh", Body=b"echo owned")
    target = tmp_path / "inbox" / "deep"
    args = argparse.Namespace(run_id=run.run_id, get=str(target), no_links=False)
    with pytest.raises(ParamError, match=r"--get.*'\.\./\.\./escape\.sh'.*nothing was written"):
        show_outputs(ctx, args, print)
    assert not target.exists() and not list(tmp_path.rglob("escape.sh"))


def test_a_file_and_folder_of_one_name_and_links_in_the_way_are_refused(ctx, workload, tmp_path):
    """S3 holds `plots` and `plots/loss.svg` side by side; a disk cannot. And a link in
    the folder fetched into would carry a write outside it."""
    run = _run(ctx, "evil-2", "mywork:main")
    _, _, objects = output_objects(ctx, run, links=False)
    twin = OutputObject("plots", run.job.output_prefix + "plots", 1, None)
    with pytest.raises(ParamError, match="both a file and a folder"):
        fetch(ctx.storage, run.job.output_bucket, objects + [twin], str(tmp_path / "a"))
    assert not (tmp_path / "a").exists()
    outside = tmp_path / "outside"
    outside.mkdir()
    into = tmp_path / "b"
    into.mkdir()
    (into / "plots").symlink_to(outside)
    with pytest.raises(ParamError, match="leads outside"):
        fetch(ctx.storage, run.job.output_bucket, objects, str(into))
    assert list(outside.iterdir()) == []


def _served(ctx):
    from ephemera.cli.dashboard.server import DashboardServer

    return DashboardServer(ctx, "127.0.0.1", 0, refresh=2).start()


def _get(url):
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_the_dashboards_run_page_leads_with_the_users_results(ctx, workload):
    """F12 and F20: the run page shows the outcome badge, the result, the output objects
    (each a download) and the failed workload's traceback before the timeline; the
    list's badge is the outcome, not a grey DESTROYED."""
    _destroy(ctx, _run(ctx, "d-ok", "mywork:main").run_id)
    _destroy(ctx, _run(ctx, "d-bad", "mywork:broken").run_id)
    server = _served(ctx)
    try:
        _, _, index = _get(server.base + "/")
        page = index.decode()
        assert 'class="state s-SUCCEEDED">SUCCEEDED' in page and 'class="state s-FAILED">FAILED' in page
        assert 's-DESTROYED">DESTROYED' not in page
        _, _, ok = _get(server.base + "/runs/d-ok")
        ok_page = ok.decode()
        head = ok_page.split("<h2>Timeline</h2>")[0]
        assert 'id="outcome">SUCCEEDED' in head and "resources DESTROYED" in head
        assert "&#34;accuracy&#34;: 0.97" in head or '"accuracy": 0.97' in head
        assert 'href="/runs/d-ok/outputs/plots/loss.svg"' in head and "metrics.json" in head
        status, headers, body = _get(server.base + "/runs/d-ok/outputs/plots/loss.svg")
        assert status == 200 and body == b"<svg/>"  # the workload's bytes, downloaded, never rendered as a page
        assert headers["Content-Type"] == "application/octet-stream" and headers["Content-Disposition"].startswith("attachment")
        for probe in ("/runs/d-ok/outputs/..%2F..%2Fjobs", "/runs/d-ok/outputs/nope.txt", "/runs/d-ok/outputs/%2Fetc%2Fpasswd"):
            assert _get(server.base + probe)[0] == 404, probe
        _, _, bad = _get(server.base + "/runs/d-bad")
        bad_head = bad.decode().split("<h2>Timeline</h2>")[0]
        assert 'id="outcome">FAILED' in bad_head and 'id="traceback"' in bad_head and "line 8, in parse" in bad_head
        assert SECRET not in bad.decode()
    finally:
        server.close()


def test_the_dashboards_logs_show_workload_lines_with_everything_one_click_away(ctx, workload):
    from ephemera.vm.logship import LogShipper

    run = _run(ctx, "d-logs", "mywork:main")
    ship = LogShipper(ctx.storage, ctx.config.state_bucket, run.run_id, 0, ctx.scrubber)
    ship.add("workload", "2026-12-02T10:00:01.000+00:00 fold 1 done")
    ship.add("boot", "2026-12-02T10:00:00.000+00:00 Collecting numpy")
    ship.flush()
    server = _served(ctx)
    try:
        run_page = _get(server.base + "/runs/d-logs")[2].decode()
        assert "fold 1 done" in run_page and "Collecting numpy" not in run_page
        assert 'href="/runs/d-logs/logs?source=all" id="all-logs"' in run_page and "(1 more)" in run_page
        assert "Collecting numpy" not in _get(server.base + "/runs/d-logs/logs")[2].decode()
        assert "Collecting numpy" in _get(server.base + "/runs/d-logs/logs?source=all")[2].decode()
    finally:
        server.close()


def test_on_s3_links_carry_no_key_id_unless_presigned_links_are_asked_for(
    local_config, s3_endpoint, unique_bucket, workload, tmp_path, capsys
):
    """The security model masks storage key ids as secrets. A presigned S3 URL names the
    key id in its query, so `runs show`, the dashboard and `ephemera outputs` give
    `aws_s3://bucket/key`; `outputs --presign` gives URLs that read the object, with a
    warning saying what they are."""
    import urllib.request

    key_id = "OUTPUTSKEYID0042"
    s3 = {"endpoint": s3_endpoint, "region": "us-east-1", "access_key_id": key_id, "secret_access_key": "testing-secret-xyz"}
    ctx = Context(local_config(storage={"backend": "aws_s3", "bucket": unique_bucket}, aws_s3=s3))
    ctx.storage.create_bucket(unique_bucket)
    run = _run(ctx, "s3-1", "mywork:main")
    shown = run_details(ctx, run)
    assert f"aws_s3://{unique_bucket}/outputs/s3-1/metrics.json" in shown and key_id not in shown
    args = argparse.Namespace(run_id=run.run_id, get=None, no_links=False, presign=False)
    out: list[str] = []
    show_outputs(ctx, args, out.append)
    assert key_id not in "\n".join(out) and "aws_s3://" in "\n".join(out)
    out.clear()
    show_outputs(ctx, argparse.Namespace(**{**vars(args), "presign": True}), out.append)
    assert "warning" in capsys.readouterr().err
    link = next(word for line in out for word in line.split() if word.startswith("http") and "metrics.json" in word)
    with urllib.request.urlopen(link, timeout=10) as response:
        assert response.read() == b'{"accuracy": 0.97}'
