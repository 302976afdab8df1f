"""The controller<->VM records are typed (:mod:`ephemera.model.heartbeat`,
:mod:`ephemera.model.vmboot`), with an unchanged wire format: what older VMs wrote
still reads, and a malformed record is skipped or refused with the field named."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ephemera import layout
from ephemera.errors import AgentConfigError, BootDocumentError
from ephemera.model.heartbeat import Heartbeat, HeartbeatInvalid, VMPhase, VMState
from ephemera.model.vmboot import AgentConfig, boot_from_json, boot_to_json
from ephemera.storage.localhost.backend import LocalhostStorage
from ephemera.vm import bootstrap
from ephemera.vm.heartbeats import read_heartbeats, seconds_since_last, write_heartbeat
from ephemera.vm.reports import PHASES, vm_reports

BUCKET = "state-bkt"
# a heartbeat exactly as the agents before the typed records wrote it (the bridge's pool_ready flat beside)
OLD_BEAT = {
    "pid": 4242,
    "state": "idle",
    "worker_processes": 2,
    "python": "/opt/ephemera/env/bin/python",
    "phases": {"booted": "2026-12-01T10:00:00+00:00", "agent_ready": "2026-12-01T10:01:00+00:00"},
    "gpu": {"count": 1, "model": "L4"},
    "pool_ready": True,
    "run_id": "run-a",
    "worker": 1,
    "at": "2026-12-01T10:02:00+00:00",
}


@pytest.fixture
def store(tmp_path):
    s = LocalhostStorage(tmp_path / "root")
    s.create_bucket(BUCKET)
    return s


def test_old_heartbeat_reads_and_writes_back_unchanged() -> None:
    beat = Heartbeat.from_dict(OLD_BEAT)
    assert beat.state is VMState.IDLE and beat.worker == 1 and beat.services == {"pool_ready": True}
    assert beat.phases[VMPhase.AGENT_READY.value] == "2026-12-01T10:01:00+00:00"
    assert beat.to_dict() == OLD_BEAT
    assert Heartbeat.from_json(beat.to_json()) == beat


def test_unknown_state_and_phases_of_a_newer_vm_are_kept_apart() -> None:
    beat = Heartbeat.from_dict({**OLD_BEAT, "state": "hibernating", "phases": {"warp_drive": "t", "booted": 3}})
    assert beat.state is None and beat.phases == {"warp_drive": "t"}


@pytest.mark.parametrize("field", ["run_id", "worker", "at"])
def test_heartbeat_without_a_field_every_writer_sets_is_invalid(field) -> None:
    with pytest.raises(HeartbeatInvalid, match=field):
        Heartbeat.from_dict({k: v for k, v in OLD_BEAT.items() if k != field})
    with pytest.raises(HeartbeatInvalid, match="worker"):
        Heartbeat.from_dict({**OLD_BEAT, "worker": True})


def test_write_then_read_in_worker_order(store) -> None:
    for worker in (1, 0):
        write_heartbeat(
            store,
            BUCKET,
            Heartbeat(
                run_id="run-a", worker=worker, state=VMState.RUNNING, phases={VMPhase.BOOTED.value: "2026-12-01T10:00:00+00:00"}
            ),
        )
    beats = read_heartbeats(store, BUCKET, "run-a")
    assert [b.worker for b in beats] == [0, 1] and all(b.at and b.state is VMState.RUNNING for b in beats)
    assert seconds_since_last(store, BUCKET, "run-a") is not None
    reports = vm_reports(store, BUCKET, "run-a")
    assert reports[0] == {
        "worker": 0,
        "state": "running",
        "phases": {"booted": "2026-12-01T10:00:00+00:00"},
        "gpu": None,
        "python": None,
    }
    assert PHASES == ("booted", "bundle_installed", "driver_ready", "agent_ready", "first_task", "last_task")


def test_malformed_and_foreign_heartbeats_are_skipped(store) -> None:
    """A heartbeat under run A's prefix that names run B (copied there, or planted), one
    without a worker, a non-object and a non-JSON object are not taken as run A's VMs."""
    put = lambda worker, body: store.put(BUCKET, layout.heartbeat_key("run-a", worker), body)  # noqa: E731
    put(0, json.dumps(OLD_BEAT | {"worker": 0}).encode())
    put(1, json.dumps(OLD_BEAT | {"run_id": "run-b"}).encode())
    put(2, json.dumps({k: v for k, v in OLD_BEAT.items() if k != "worker"}).encode())
    put(3, b"[1, 2]")
    put(4, b"{not json")
    assert [b.worker for b in read_heartbeats(store, BUCKET, "run-a")] == [0]
    assert read_heartbeats(store, "no-such-bkt", "run-a") == []


# -- the agent config ---------------------------------------------------------------------------


def test_agent_config_as_older_boots_wrote_it_reads() -> None:
    old = {
        "run_id": "run-a",
        "config": {"storage": {"backend": "localhost"}},
        "state_file": "/opt/e/state.json",
        "heartbeat_interval": 5.0,
        "workdir": "/opt/e/bundle/x/source",
        "use_gpu": False,
        "run_key": None,
    }
    cfg = AgentConfig.from_json(json.dumps(old))
    assert (cfg.run_key, cfg.use_gpu, cfg.worker_processes, cfg.log_interval) == ("", False, None, 3.0)
    back = json.loads(cfg.to_json())
    assert back == {**{k: v for k, v in old.items() if v is not None}, "run_key": "", "log_interval": 3.0}


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"config": {}}, "run_id"),
        ({"run_id": "r", "config": "storage: x"}, "config"),
        ({"run_id": "r", "config": {}, "heartbeat_interval": "5s"}, "heartbeat_interval"),
    ],
)
def test_agent_config_names_the_bad_field_and_the_fix(raw, field) -> None:
    with pytest.raises(AgentConfigError) as caught:
        AgentConfig.from_json(json.dumps({**raw, "run_key": "ab" * 32}))
    err = caught.value
    assert err.field == field and err.code == "AGENT_CONFIG_INVALID" and "start the VM again" in err.message
    assert "ab" * 32 not in err.message  # the run key never appears in the error


# -- the boot document --------------------------------------------------------------------------

DOC = {
    "format": 1,
    "run_id": "run-a",
    "worker": 0,
    "worker_count": 1,
    "state_bucket": BUCKET,
    "storage": {"backend": "localhost", "localhost": {}},
    "identity": None,
    "extras": [],
    "hard_deadline": "",
    "entry": "m:f",
    "run_key": "00" * 32,
    "bundle": {"key": "k", "sha256": "s", "size": 1, "url": None},
    "marker": {"bucket": BUCKET, "key": "out/run-a/_FAILURE.json", "url": None},
    "credentials": None,
}


def test_boot_document_round_trips_and_keeps_stack_fields() -> None:
    doc = {**DOC, "root": "/opt/ephemera", "reboot": ["systemctl", "reboot"], "gpu": {"count": 1, "model": "L4"}}
    assert boot_from_json(boot_to_json(doc)) == doc  # type: ignore[arg-type]  # a plain dict, as a stack writes it


@pytest.mark.parametrize("field", ["run_id", "worker", "state_bucket", "bundle", "marker"])
def test_boot_document_without_a_controller_field_is_refused_by_name(field) -> None:
    """A stack that replaced the document instead of merging over it loses the controller's fields."""
    with pytest.raises(BootDocumentError, match=f"boot document field '{field}'") as caught:
        boot_from_json(json.dumps({k: v for k, v in DOC.items() if k != field}))
    assert "00" * 32 not in caught.value.message


def test_the_bootstrap_still_runs_as_one_stdlib_file(tmp_path) -> None:
    """Shipped alone as user_data: its BootDocument import happens only under a type checker."""
    (tmp_path / "bootstrap.py").write_bytes(open(bootstrap.__file__, "rb").read())
    done = subprocess.run(
        [sys.executable, "-I", "-S", "bootstrap.py", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "--boot" in done.stdout, done.stderr
