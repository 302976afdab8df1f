"""The workload's checkpoint contract (issue 19): ``ctx.checkpoint(name, data)`` keeps
bytes, text or JSON under the run's own prefix, ``ctx.restore(name)`` gives it back with
its type (None when absent), names are plain (no path escapes), and the VMs' storage
grant covers this run's checkpoints and no other's. A checkpoint carries a tag under the
run key, so an object planted at its key by whoever can write the bucket (another run's
VM under a shared IBM trusted profile) is refused before it is decoded."""

from __future__ import annotations

import json
import logging
import os
import threading

import pytest

from ephemera import layout
from ephemera.errors import ParamError
from ephemera.model.jobs import JobSpec
from ephemera.storage.localhost.backend import LocalhostStorage
from ephemera.vm import checkpoints
from ephemera.vm.workload import WorkloadContext, listen_for_preemption

BUCKET = "state"
SIGNING_KEY = b"k" * 32  # the controller's; a run's key derives from it and the run id


def run_key_of(run_id: str) -> str:
    import hashlib
    import hmac

    return hmac.new(SIGNING_KEY, run_id.encode(), hashlib.sha256).hexdigest()


def make_ctx(tmp_path, run_id="r-1", run_key: str | None = None) -> WorkloadContext:
    storage = LocalhostStorage(tmp_path / "root")
    storage.create_bucket(BUCKET)
    job = JobSpec(
        run_id=run_id,
        workspace="ws",
        entry="x:y",
        params={},
        state_bucket=BUCKET,
        output_bucket=BUCKET,
        output_prefix=f"outputs/{run_id}/",
    )
    return WorkloadContext(job=job, storage=storage, run_key=run_key_of(run_id) if run_key is None else run_key)


@pytest.mark.parametrize("data", [b"\x00\x01weights\n\xff", "step 3 of 10\nnext line", {"step": 3, "loss": [0.5, 0.25]}, [1, 2]])
def test_a_checkpoint_restores_with_the_type_it_was_saved_with(tmp_path, data):
    ctx = make_ctx(tmp_path)
    key = ctx.checkpoint("progress", data)
    assert key == "ephemera/checkpoints/r-1/progress"
    assert ctx.restore("progress") == data
    assert type(ctx.restore("progress")) is type(data)


def test_the_last_checkpoint_wins_and_a_missing_one_is_none(tmp_path):
    ctx = make_ctx(tmp_path)
    assert ctx.restore("progress") is None
    for step in range(3):
        ctx.checkpoint("progress", {"step": step})
    assert ctx.restore("progress") == {"step": 2}


def test_a_recovered_vm_of_the_same_run_restores_and_another_run_does_not(tmp_path):
    """A recovery re-applies the same run (same run id): its new VM's context reads what
    the lost VM saved; a different run has its own, empty prefix."""
    make_ctx(tmp_path, "r-1").checkpoint("progress", {"step": 7})
    assert make_ctx(tmp_path, "r-1").restore("progress") == {"step": 7}
    assert make_ctx(tmp_path, "r-2").restore("progress") is None


@pytest.mark.parametrize("name", ["../r-2/progress", "a/b", "..", "", ".hidden", "x..y", "a" * 129, "name with space", 7, None])
def test_a_name_that_is_not_plain_is_refused_with_the_field_and_the_fix(tmp_path, name):
    """A name is a plain name: nothing in it can reach outside the run's prefix (another
    run's checkpoints, the run's job spec or record)."""
    ctx = make_ctx(tmp_path)
    with pytest.raises(ParamError) as err:
        ctx.checkpoint(name, b"x")
    assert err.value.field == "checkpoint name" and "use a plain name" in str(err.value)
    with pytest.raises(ParamError):
        ctx.restore(name)
    assert not list(ctx.storage.list(BUCKET, "ephemera/"))


def test_data_that_is_not_bytes_text_or_json_is_refused_naming_the_field(tmp_path):
    ctx = make_ctx(tmp_path)
    with pytest.raises(ParamError) as err:
        ctx.checkpoint("progress", {"when": object()})
    assert "checkpoint data" in str(err.value)
    with pytest.raises(ParamError):
        ctx.checkpoint("progress", float("nan"))
    assert ctx.restore("progress") is None  # nothing half-written


@pytest.mark.parametrize(
    "planted",
    [
        b"raw bytes",  # not a checkpoint at all
        b"ephemera-checkpoint/2 bytes\nweights",  # the header without a tag
        checkpoints.encode(b"evil pickle", "0" * 64, "r-1", "ephemera/checkpoints/r-1/progress"),  # another key's tag
        checkpoints.encode(b"evil pickle", run_key_of("r-2"), "r-2", "ephemera/checkpoints/r-2/progress"),  # r-2's, copied
        checkpoints.encode(b"evil pickle", run_key_of("r-1"), "r-1", "ephemera/checkpoints/r-1/other"),  # another name's
    ],
    ids=["raw", "untagged", "wrong-key", "another-run", "another-name"],
)
def test_a_planted_checkpoint_is_refused_logged_and_never_decoded(tmp_path, caplog, planted):
    """Whoever can write the bucket without the run key cannot hand a recovered VM the
    bytes it restores (a workload may torch.load them): the restore says there is none and
    logs a security warning naming the checkpoint, never the run key."""
    ctx = make_ctx(tmp_path)
    ctx.storage.put(BUCKET, layout.checkpoint_key("r-1", "progress"), planted)
    with caplog.at_level(logging.WARNING):
        assert ctx.restore("progress") is None
    assert "SECURITY: checkpoint 'progress' refused" in caplog.text
    assert ctx.run_key not in caplog.text and ctx.run_key not in repr(ctx)


def test_a_tampered_checkpoint_body_is_refused(tmp_path):
    ctx = make_ctx(tmp_path)
    key = ctx.checkpoint("progress", {"step": 3})
    raw = ctx.storage.get(BUCKET, key)
    ctx.storage.put(BUCKET, key, raw.replace(b'"step": 3', b'"step": 9'))
    assert ctx.restore("progress") is None


def test_a_context_without_the_run_key_refuses_to_checkpoint(tmp_path):
    ctx = make_ctx(tmp_path, run_key="")
    with pytest.raises(ParamError) as err:
        ctx.checkpoint("progress", b"x")
    assert err.value.field == "run key"
    assert not list(ctx.storage.list(BUCKET, "ephemera/"))


def test_the_vms_grant_covers_this_runs_checkpoints_and_nothing_wider():
    prefixes = layout.run_prefixes("r-1", "outputs/r-1/", "ab" * 32)
    assert "ephemera/checkpoints/r-1/" in prefixes.write
    assert not any(
        p.startswith("ephemera/checkpoints") and p != "ephemera/checkpoints/r-1/" for p in prefixes.write + prefixes.read
    )
    # a new run whose checkpoint prefix already holds something was planted for it: refused
    assert "ephemera/checkpoints/r-1/" in layout.run_state_prefixes("r-1")
    # what a VM's checkpoint key can be is inside the grant, whatever name passes the check
    assert checkpoints.key("r-1", "model.pt").startswith("ephemera/checkpoints/r-1/")


def test_the_s3_session_policy_of_a_run_names_its_checkpoint_prefix_only():
    """On S3 the VMs' keys carry a session policy built from the run's prefixes: writes
    under this run's checkpoints are allowed, the checkpoints folder as a whole is not."""
    from ephemera.storage.aws_s3 import sts
    from ephemera.storage.spec import RunScope

    scope = RunScope("r-1", "state", "out", layout.run_prefixes("r-1", "outputs/r-1/", "0" * 64), 900)
    policy = json.dumps(sts.session_policy(scope))
    assert "arn:aws:s3:::state/ephemera/checkpoints/r-1/*" in policy
    assert "ephemera/checkpoints/*" not in policy and "ephemera/checkpoints/\"" not in policy


def test_on_preempt_callbacks_run_once_in_a_thread_and_their_errors_are_logged(tmp_path, caplog):
    ctx = make_ctx(tmp_path)
    calls, threads = [], []
    done = threading.Event()

    def good(notice):
        calls.append(notice["action"])
        threads.append(threading.current_thread().name)
        done.set()

    def bad(notice):
        raise RuntimeError("callback broke")

    ctx.on_preempt(bad)
    ctx.on_preempt(good)
    assert not ctx.preempted
    with caplog.at_level(logging.ERROR, logger="ephemera.workload"):
        ctx.notify_preempted({"notice_at": "t", "source": "aws", "action": "terminate"})
        ctx.notify_preempted({"notice_at": "t2", "source": "aws", "action": "stop"})  # a second notice changes nothing
        assert done.wait(5)
        for _ in range(100):
            if "callback broke" in caplog.text:
                break
            threading.Event().wait(0.02)
    assert ctx.preempted and ctx.preemption["action"] == "terminate"
    assert calls == ["terminate"] and threads == ["on-preempt"]
    assert "callback broke" in caplog.text
    late = threading.Event()
    ctx.on_preempt(lambda n: late.set())  # given after the notice: called at once
    assert late.wait(5)


def test_the_agents_notice_pipe_reaches_the_workload_context(tmp_path):
    ctx = make_ctx(tmp_path)
    read, write = os.pipe()
    thread = listen_for_preemption(ctx, read)
    assert thread is not None
    os.write(write, b"not json\n" + json.dumps({"notice_at": "t", "source": "local", "action": "terminate"}).encode() + b"\n")
    os.close(write)
    thread.join(5)
    assert ctx.preempted and ctx.preemption["source"] == "local"


def test_the_docs_checkpoint_loop_resumes_where_the_last_checkpoint_left_it(tmp_path):
    """docs/first-workload.md's resumable.py, as written: a first VM saves step 3 and is
    lost; the recovered VM of the same run resumes at step 3 and ends with the total an
    unpreempted run has."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "first-workload.md").read_text()
    code = re.search(r"```python\n# resumable.py\n(.*?)```", text, re.S)
    assert code, "the page lost its resumable.py block"
    namespace: dict = {}
    exec(compile(code.group(1), "resumable.py", "exec"), namespace)
    first = make_ctx(tmp_path)
    first.job.params["steps"] = 5
    first.checkpoint("progress", {"step": 3, "total": 6})  # what the lost VM saved
    again = make_ctx(tmp_path)
    again.job.params["steps"] = 5
    assert namespace["main"](again) == {"resumed_from": 3, "total": 15}
    fresh = make_ctx(tmp_path, "r-2")
    fresh.job.params["steps"] = 5
    assert namespace["main"](fresh) == {"resumed_from": 0, "total": 15}
