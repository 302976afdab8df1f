"""Exactly once: one run per event (its claim), redelivery a no-op, one open run per workspace.

20 concurrent invocations of ``actions.apply.main`` for one workspace, from threads
and from separate processes, on localhost storage and on S3 (a local S3 server),
including S3 without conditional PUT (the claim protocol IBM COS relies on), produce
exactly one apply: one run record, one Terraform apply, one agent started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ephemera.actions import apply, destroy
from ephemera.context import Context
from ephemera.engines.terraform.engine import TerraformEngine
from ephemera.locking.workspace_lock import WorkspaceLock
from ephemera.model.runids import event_identity
from ephemera.events.formats import parse_event
from tests.helpers import agent_pids, marker_event, marker_written, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # concurrent real applies

N = 20
ALARM_TIME = "2026-11-21T10:00:00+00:00"


def storage_config(backend: str, s3_endpoint: str | None, bucket: str) -> dict:
    if backend == "localhost":
        return {}
    s3 = {"endpoint": s3_endpoint, "region": "us-east-1", "access_key_id": "testing", "secret_access_key": "testing-secret-xyz"}
    return {"storage": {"backend": "aws_s3", "bucket": bucket}, "aws_s3": s3}


@pytest.fixture(params=["localhost", "aws_s3"])
def backend_cfg(request, local_cfg, unique_bucket):
    """A local-flow config on localhost storage or on the local S3 server."""
    extra = {}
    if request.param == "aws_s3":
        extra = storage_config("aws_s3", request.getfixturevalue("s3_endpoint"), unique_bucket)
    config = local_cfg(workload={"params": {"sleep": 1}}, **extra)
    if request.param == "aws_s3":
        Context(config).storage.create_bucket(unique_bucket)
    return config


def events(mode: str) -> list[dict]:
    """``same``: one alarm delivered N times; ``distinct``: N different requests;
    ``mixed``: half each."""
    same = {"ephemera_kind": "alarm", "ephemera_trigger": "nightly", "ephemera_time": ALARM_TIME}
    distinct = [{"idempotency_key": f"request-{i}"} for i in range(N)]
    if mode == "same":
        return [dict(same) for _ in range(N)]
    if mode == "distinct":
        return distinct
    return [dict(same) if i % 2 else distinct[i] for i in range(N)]


def check_one_apply(config: dict, results: list[dict], faults, applies_counted: int | None = None) -> str:
    ctx = Context(config)
    faults.track(ctx)
    runs = list(ctx.ledger.list())
    created = [r for r in results if r.get("ok") and not r.get("duplicate") and not r.get("skipped")]
    assert not [r for r in results if "error" in r], results
    assert len(runs) == 1, [r.run_id for r in runs]
    assert len(created) == 1, results
    run = runs[0]
    activities = [a for a in run.activities if a.kind == "apply"]
    agents = agent_pids(Path(config["home"]))
    faults.duplicates(max(0, len(runs) - 1) + max(0, len(activities) - 1) + max(0, len(agents) - 1))
    if applies_counted is not None:
        faults.duplicates(max(0, applies_counted - 1))
        assert applies_counted == 1
    assert len(activities) == 1 and len(agents) == 1
    for r in results:  # every other invocation says why it did nothing
        if r is not created[0]:
            assert (r.get("duplicate") and r["reason_code"] == "DUPLICATE_EVENT") or (
                r.get("skipped") and r["reason_code"] == "WORKSPACE_BUSY"
            ), r
            assert run.run_id in r["reason"] or r.get("run_id") == run.run_id, r
    wait_for(lambda: marker_written(ctx, run.run_id), what="marker")
    assert destroy.main(marker_event(config, run.run_id))["state"] == "DESTROYED"
    return run.run_id


@pytest.mark.parametrize("mode", ["same", "distinct"])
def test_twenty_threads_one_apply(backend_cfg, mode, monkeypatch, faults):
    calls = []
    real_apply = TerraformEngine.apply

    def counting_apply(self, workspace, run_id, variables, secure):
        calls.append(run_id)
        return real_apply(self, workspace, run_id, variables, secure)

    monkeypatch.setattr(TerraformEngine, "apply", counting_apply)
    barrier = threading.Barrier(N)
    results: list = [None] * N

    def invoke(i, params):
        barrier.wait()
        results[i] = apply.main({"config": backend_cfg, **params})

    threads = [threading.Thread(target=invoke, args=(i, p)) for i, p in enumerate(events(mode))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    faults.inject(N - 1)  # redundant deliveries / competing requests
    run_id = check_one_apply(backend_cfg, results, faults, applies_counted=len(calls))
    if mode == "same":  # the id is random, not the alarm's time
        assert run_id.startswith("ws-") and "20261121t100000" not in run_id


CHILD = """
import json, os, sys, time
params = json.loads(sys.stdin.read())
go = params.pop("_go")
ready = params.pop("_ready")
from ephemera.actions import apply
open(ready, "w").close()  # imported: ready for the gate
while not os.path.exists(go):
    time.sleep(0.005)
print(json.dumps(apply.main(params)))
"""


def test_twenty_processes_one_apply(backend_cfg, tmp_path, faults):
    go, ready_dir = tmp_path / "go", tmp_path / "ready"
    ready_dir.mkdir()
    procs = []
    for i, params in enumerate(events("mixed")):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=os.getcwd(),
        )
        proc.stdin.write(json.dumps({"config": backend_cfg, "_go": str(go), "_ready": str(ready_dir / str(i)), **params}))
        proc.stdin.close()
        procs.append(proc)
    # every interpreter has started and imported before the gate opens
    wait_for(lambda: len(list(ready_dir.iterdir())) == len(procs), what="every child ready")
    go.touch()
    results = []
    for proc in procs:
        out = proc.stdout.read()
        proc.wait()
        results.append(json.loads(out.strip().splitlines()[-1]))
    faults.inject(N - 1)
    check_one_apply(backend_cfg, results, faults)
    logs = "".join(p.read_text() for p in Path(backend_cfg["home"]).glob("runs/*/agents/*.log"))
    assert logs.count("up, pid") == 1  # exactly one agent ever started


def test_twenty_threads_without_conditional_put(local_cfg, s3_endpoint, unique_bucket, monkeypatch, faults):
    """IBM COS has no documented conditional PUT: the claim protocol must hold alone."""
    from ephemera.storage import claims
    from ephemera.storage.aws_s3.backend import S3CompatibleStorage

    config = local_cfg(workload={"params": {"sleep": 1}}, **storage_config("aws_s3", s3_endpoint, unique_bucket))
    Context(config).storage.create_bucket(unique_bucket)
    used = []

    def by_claims(self, bucket, key, data):  # what the ibm_cos backend does: no If-None-Match
        used.append(key)
        return claims.put_if_absent_by_claims(self, bucket, key, data, settle=0.2)

    monkeypatch.setattr(S3CompatibleStorage, "put_if_absent", by_claims)
    barrier = threading.Barrier(N)
    results: list = [None] * N

    def invoke(i, params):
        barrier.wait()
        results[i] = apply.main({"config": config, **params})

    threads = [threading.Thread(target=invoke, args=(i, p)) for i, p in enumerate(events("mixed"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    faults.inject(N - 1)
    check_one_apply(config, results, faults)
    assert any("/locks/workspaces/" in k for k in used)


def test_redelivered_marker_destroys_once(local_cfg, faults):
    config = local_cfg()
    run_id = apply.main({"config": config, "ephemera_kind": "alarm", "ephemera_time": ALARM_TIME})["run_id"]
    ctx = Context(config)
    wait_for(lambda: marker_written(ctx, run_id), what="marker")
    results: list = [None] * 8
    barrier = threading.Barrier(8)

    def deliver(i):
        barrier.wait()
        results[i] = destroy.main(marker_event(config, run_id))

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    faults.inject(7)
    assert not [r for r in results if "error" in r], results
    assert sum(1 for r in results if r.get("state") == "DESTROYED" and not r.get("ignored")) == 1, results
    run = ctx.ledger.get(run_id)
    assert [a.kind for a in run.activities] == ["apply", "destroy"]
    # the same alarm again, after the run is gone: still a duplicate, no second run
    again = apply.main({"config": config, "ephemera_kind": "alarm", "ephemera_time": ALARM_TIME})
    assert again["duplicate"] and again["run_id"] == run_id and again["state"] == "DESTROYED"
    assert len(list(ctx.ledger.list())) == 1


def test_object_write_identity_is_bucket_key_etag():
    base = {"ephemera_kind": "object_write", "bucket": "in-bucket", "key": "data/x.csv"}
    one = event_identity(parse_event({**base, "etag": "abc"}), "ws")
    assert one == event_identity(parse_event({**base, "etag": "abc"}), "ws")
    assert one != event_identity(parse_event({**base, "etag": "abd"}), "ws")
    assert one != event_identity(parse_event({**base, "key": "data/y.csv", "etag": "abc"}), "ws")
    assert one != event_identity(parse_event({**base, "etag": "abc"}), "other-ws")


def test_lock_expires_with_the_hard_timeout_unless_its_run_still_holds_resources(local_cfg):
    ctx = Context(local_cfg())
    lock = WorkspaceLock(ctx.storage, ctx.config.state_bucket, "ws", grace=300)
    now = datetime.now(timezone.utc)
    always_open = lambda run_id: True  # noqa: E731
    no_record = lambda run_id: None  # noqa: E731
    assert lock.acquire("ws-a", now + timedelta(hours=1), always_open).acquired
    assert lock.acquire("ws-b", now + timedelta(hours=1), always_open).holder == "ws-a"
    # a holder whose record is not written yet is in progress, not stale
    assert not lock.acquire("ws-b", now + timedelta(hours=1), no_record).acquired
    # the same event again while in flight: a duplicate, not a takeover
    dup = lock.acquire("ws-a", now + timedelta(hours=1), always_open)
    assert dup.holder == "ws-a" and not dup.acquired
    # past its expiry (hard deadline + soft timeout) a run that may still hold
    # resources keeps the workspace (the reaper destroys it first) ...
    body = lock.holder()
    body["expires"] = (now - timedelta(seconds=1)).isoformat()
    gen, _ = lock.current()
    ctx.storage.put(ctx.config.state_bucket, lock._key(gen), json.dumps(body).encode())
    assert lock.acquire("ws-c", now + timedelta(hours=1), always_open).holder == "ws-a"
    # ... while an expired lock whose run left no record is stale and taken over
    taken = lock.acquire("ws-c", now + timedelta(hours=1), no_record)
    assert taken.acquired and taken.holder == "ws-c"
    assert lock.release("ws-c", taken.token) and lock.acquire("ws-d", now + timedelta(hours=1), always_open).acquired
