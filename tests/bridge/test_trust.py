"""Finding 2 of issue 16: whoever can write the state bucket must not run code on a VM
(or in the client) by planting pickles, and must not change what a run executes.

The attacks are the ones reproduced against the old code: a cloudpickled object whose
unpickling creates a file (``__reduce__`` -> ``pathlib.Path.touch``) planted in a run's
queue (before the run exists and while it serves), forged or replayed result slots,
and a changed job spec. Each must leave the file uncreated, and the legitimate job
must still complete. Facts relied on: ``pickle``'s ``__reduce__`` contract (the
unpickler calls the returned callable with the returned arguments), which is why a
planted pickle runs code the moment it is loaded; ``hmac.compare_digest`` compares in
time independent of where the inputs differ.
"""

from __future__ import annotations

import json
import logging
import pathlib
import secrets
import uuid
from datetime import datetime, timezone

import cloudpickle
import pytest

import lithops_bridge as lithops
from ephemera.assembly import load_config
from ephemera.errors import JobSpecError
from ephemera.layout import job_key as spec_key
from ephemera.model.jobs import JobSpec, load_job, save_job, signed_json
from ephemera.assembly import get_storage
from lithops_bridge.backends.standalone import keys, slots
from lithops_bridge.backends.standalone.seal import RunSeal, SealError, parse_key, seal
from lithops_bridge.backends.standalone.server import TaskServer
from lithops_bridge.errors import BridgeError
from tests.bridge import funcs


class Touch:
    """Unpickling this creates ``path``: the planted payload of every attack below."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.path),)


@pytest.fixture
def store(tmp_path):
    bucket = "trust"
    st = get_storage(
        load_config(
            {
                "storage": {"backend": "localhost", "bucket": bucket},
                "localhost": {"root": str(tmp_path / "storage")},
                "home": str(tmp_path / "home"),
            }
        )
    )
    st.create_bucket(bucket)
    return st


def _presence(store, bucket: str, run_id: str, worker: int = 1) -> None:
    beat = {
        "worker": worker,
        "state": "idle",
        "worker_processes": 2,
        "interval": 1.0,
        "started": datetime.now(timezone.utc).isoformat(),
        "at": datetime.now(timezone.utc).isoformat(),
    }
    store.put(bucket, keys.server_key(run_id, worker), json.dumps(beat).encode())


def _client_config(tmp_path, run_id: str, run_key: str) -> dict:
    return {
        "lithops": {"backend": "standalone", "storage": "localhost"},
        "standalone": {"run_id": run_id, "run_key": run_key, "worker_processes": 2, "poll_interval": 0.02},
        "localhost": {"storage_bucket": "trust", "storage_root": str(tmp_path / "storage")},
    }


def _plant(store, run_id: str, job_key: str, canary) -> list[str]:
    """Every form of a planted queue object: a raw pickle, one sealed with another run's key,
    and a genuine job of another run copied into this run's queue. The keys planted."""
    other_key, other_run = bytes.fromhex(secrets.token_hex(32)), f"{run_id}-other"
    evil = cloudpickle.dumps(
        {
            "job_key": job_key,
            "func": cloudpickle.dumps(Touch(canary)),
            "batches": [(0, 1)],
            "data": [cloudpickle.dumps({})],
            "worker_processes": 1,
            "workers": [],
        }
    )
    planted = {
        keys.queue_key(run_id, f"{job_key}"): cloudpickle.dumps(Touch(canary)),  # unsigned
        keys.queue_key(run_id, f"{job_key}b"): seal(
            other_key, keys.JOB_KIND, run_id, keys.queue_key(run_id, f"{job_key}b"), cloudpickle.dumps(Touch(canary))
        ),  # another key
        keys.queue_key(run_id, f"{job_key}c"): seal(
            other_key, keys.JOB_KIND, other_run, keys.queue_key(other_run, f"{job_key}c"), evil
        ),  # replayed
    }
    for key, body in planted.items():
        store.put("trust", key, body)
    return list(planted)


def _serve(store, run_id: str, run_key: str) -> TaskServer:
    _presence(store, "trust", run_id)
    server = TaskServer(store, "trust", run_id, 1, 2, {}, run_key)
    return server.start()


def test_a_pickle_planted_in_a_future_runs_queue_never_runs(store, tmp_path, caplog):
    """Planted before the run exists (its id was predictable): the run's server starts,
    refuses every planted object without unpickling it, and runs its own job."""
    run_id, run_key = f"ws-{uuid.uuid4().hex[:8]}", secrets.token_hex(32)
    canary = tmp_path / "owned"
    planted = _plant(store, run_id, "evil0-A000", canary)
    caplog.set_level(logging.WARNING, logger="lithops_bridge.seal")
    server = _serve(store, run_id, run_key)
    try:
        with lithops.FunctionExecutor(config=_client_config(tmp_path, run_id, run_key)) as fexec:
            assert fexec.get_result(fexec.map(funcs.double, [1, 2, 3]), timeout=30) == [2, 4, 6]
        assert server._refused == {keys.job_key_of(k) for k in planted}
    finally:
        server.stop()
    assert not canary.exists(), "a planted pickle ran on the VM"
    refused = [r.getMessage() for r in caplog.records if r.name == "lithops_bridge.seal"]
    assert sorted(refused) == sorted(set(refused)) and len(refused) == len(planted)  # each logged once
    assert all(run_key not in m for m in refused)
    assert any("carries no MAC" in m for m in refused) and any("wrong MAC" in m for m in refused)


def test_a_pickle_planted_while_the_run_serves_never_runs(store, tmp_path):
    run_id, run_key = f"ws-{uuid.uuid4().hex[:8]}", secrets.token_hex(32)
    canary = tmp_path / "owned"
    server = _serve(store, run_id, run_key)
    try:
        with lithops.FunctionExecutor(config=_client_config(tmp_path, run_id, run_key)) as fexec:
            assert fexec.call_async(funcs.double, 1).result() == 2
            _plant(store, run_id, "evil1-A000", canary)
            assert fexec.get_result(fexec.map(funcs.add, [(1, 2), (3, 4)]), timeout=30) == [3, 7]
    finally:
        server.stop()
    assert not canary.exists(), "a planted pickle ran on the VM"


def _queued_job(store, tmp_path, run_id: str, run_key: str):
    """A client that submitted one call to a run whose only 'VM' is a presence (nobody claims)."""
    _presence(store, "trust", run_id)
    fexec = lithops.FunctionExecutor(config=_client_config(tmp_path, run_id, run_key))
    fut = fexec.call_async(funcs.double, 5)
    return fexec, fut


def _result_body(canary) -> bytes:
    outcome = {"call_id": 0, "ok": True, "value": cloudpickle.dumps(Touch(canary)), "stats": {}}
    return slots.encode({"kind": slots.RESULT, "worker": 9, "token": "forged", "outcomes": [outcome]})


@pytest.mark.parametrize("forgery", ["unsigned", "other-run", "replayed-place", "unsigned-pickle"])
def test_a_forged_result_slot_is_never_unpickled_by_the_client(store, tmp_path, forgery):
    """A result in the slot after a claim, written by someone without the run key: the
    client does not unpickle it and fails the call with a BridgeError saying why."""
    run_id, run_key = f"ws-{uuid.uuid4().hex[:8]}", secrets.token_hex(32)
    canary = tmp_path / "owned"
    fexec, fut = _queued_job(store, tmp_path, run_id, run_key)
    try:
        jk = fut.job_key
        claim_key, result_key = keys.slot_key(run_id, jk, 0, 0), keys.slot_key(run_id, jk, 0, 1)
        run_seal = RunSeal(parse_key(run_key), run_id)
        claim = {"kind": slots.CLAIM, "worker": 1, "pid": 1, "token": "t", "at": datetime.now(timezone.utc).isoformat()}
        assert slots.take(store, "trust", claim_key, claim, run_seal)  # a genuine claim by the run's VM
        body = _result_body(canary)
        other_run, other_key = f"{run_id}-x", bytes.fromhex(secrets.token_hex(32))
        forged = {
            "unsigned": body,
            "unsigned-pickle": cloudpickle.dumps({"kind": "result", "outcomes": [Touch(canary)]}),
            # valid for another run (its VM holds that run's key), written here
            "other-run": seal(other_key, slots.KIND, other_run, keys.slot_key(other_run, jk, 0, 1), body),
            # genuine for this run, but sealed for another place (another batch), copied here
            "replayed-place": run_seal.seal(slots.KIND, keys.slot_key(run_id, jk, 7, 1), body),
        }[forgery]
        store.put("trust", result_key, forged)
        with pytest.raises(BridgeError, match="cannot be trusted: object .* (carries no MAC|has a wrong MAC)"):
            fut.result()
        assert fut.error
    finally:
        fexec.compute_handler.close()
    assert not canary.exists(), "the client unpickled a forged result"


def test_a_forged_first_claim_fails_the_call_instead_of_hanging(store, tmp_path):
    """A slot 0 planted before any VM claims blocks the batch; the client says so."""
    run_id, run_key = f"ws-{uuid.uuid4().hex[:8]}", secrets.token_hex(32)
    fexec, fut = _queued_job(store, tmp_path, run_id, run_key)
    try:
        store.put("trust", keys.slot_key(run_id, fut.job_key, 0, 0), b'{"kind":"claim","token":"x"}')
        with pytest.raises(BridgeError, match="carries no MAC"):
            fut.result()
    finally:
        fexec.compute_handler.close()


def test_sealed_objects_bind_kind_run_and_place():
    key, body = bytes.fromhex("11" * 32), b"payload"
    blob = seal(key, "slot", "run-a", "k/1", body)
    assert blob != body and RunSeal(key, "run-a").unseal("slot", "k/1", blob) == body
    for kind, run, where, k in (
        ("job", "run-a", "k/1", key),
        ("slot", "run-b", "k/1", key),
        ("slot", "run-a", "k/2", key),
        ("slot", "run-a", "k/1", bytes.fromhex("22" * 32)),
    ):
        with pytest.raises(SealError):
            RunSeal(k, run).unseal(kind, where, blob)
    with pytest.raises(SealError):  # a flipped body bit
        RunSeal(key, "run-a").unseal("slot", "k/1", blob[:-1] + b"X")
    assert "11" * 32 not in repr(RunSeal(key, "run-a"))


# --- the job spec -------------------------------------------------------------------------


def _spec(run_id: str) -> JobSpec:
    return JobSpec(
        run_id=run_id,
        workspace="ws",
        entry="ephemera.workloads.smoke:main",
        params={"message": "hi"},
        state_bucket="trust",
        output_bucket="trust",
        output_prefix=f"outputs/{run_id}/",
    )


def test_a_changed_job_spec_is_refused(store):
    run_id, run_key = "ws-spec", secrets.token_hex(32)
    save_job(store, "trust", _spec(run_id), run_key)
    assert load_job(store, "trust", run_id, run_key).params == {"message": "hi"}  # the controller's own spec

    raw = json.loads(store.get("trust", spec_key(run_id)))
    for change in ({"entry": "os:system"}, {"params": {"message": "pwned"}}, {"extra": 1}, {"signature": None}):
        store.put("trust", spec_key(run_id), json.dumps({**raw, **change}).encode())
        with pytest.raises(JobSpecError, match="the job spec of run ws-spec .*(not signed|wrong signature)") as info:
            load_job(store, "trust", run_id, run_key)
        assert info.value.code == "JOB_SPEC_UNTRUSTED" and run_key not in info.value.message
    store.put("trust", spec_key(run_id), _spec(run_id).to_json())  # unsigned, as written before
    with pytest.raises(JobSpecError, match="not signed"):
        load_job(store, "trust", run_id, run_key)
    other_key = secrets.token_hex(32)  # signed by another run's key (that run's VM has it)
    store.put("trust", spec_key(run_id), signed_json(_spec(run_id), other_key))
    with pytest.raises(JobSpecError, match="wrong signature"):
        load_job(store, "trust", run_id, run_key)
    store.put("trust", spec_key(run_id), signed_json(_spec("ws-other"), run_key))  # another run's spec, this key
    with pytest.raises(JobSpecError, match="signed for another run"):
        load_job(store, "trust", run_id, run_key)
    with pytest.raises(JobSpecError, match="no run_key"):
        load_job(store, "trust", run_id, "")
