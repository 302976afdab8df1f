"""The VM's preemption watcher (issue 19) against fake metadata services on 127.0.0.1.

AWS's contract (EC2 user guide, "Spot Instance interruption notices" and "Use IMDSv2"):
a session token comes from ``PUT /latest/api/token`` with the
``X-aws-ec2-metadata-token-ttl-seconds`` header and goes with every GET as
``X-aws-ec2-metadata-token``; ``/latest/meta-data/spot/instance-action`` answers 404
until the Spot Instance is marked for interruption, then ``{"action": "terminate" | "stop"
| "hibernate", "time": ...}``; the notice comes two minutes ahead (none for hibernate),
and AWS suggests checking every 5 seconds.

IBM: the VPC docs name no in-guest preemption notice; the watcher reads the metadata
service's instance document (``GET /metadata/v1/instance``, an instance identity token
from ``PUT /identity/v1/token`` with ``Metadata-Flavor: ibm``), whose status and
lifecycle reasons carry the preemption code, and whose ``availability_policy.preemption``
says ``stop`` or ``delete``.

Whatever the platform, a failed status call is never a preemption (issue 19: SkyPilot
#10155, 24 "recoveries" in 19 h of a healthy job)."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error

import pytest

from ephemera.model.heartbeat import Heartbeat, VMPhase, VMState, preemption_of
from ephemera.vm.preemption import (
    AWSSpotNotice,
    IBMInstanceStatus,
    LocalNoticeFile,
    PreemptionWatcher,
    notice_source,
    watch_config,
)
from tests.fakes.imds_server import start_imds_server
from tests.fakes.metadata_server import start_metadata_server

NOTICE = {"action": "terminate", "time": "2026-12-07T08:02:00Z"}


@pytest.fixture
def imds():
    server = start_imds_server()
    yield server
    server.stop()


@pytest.fixture
def ibm_metadata():
    server = start_metadata_server("Profile-abc")
    yield server
    server.stop()


def test_aws_no_notice_is_404_and_the_notice_is_the_documented_object(imds):
    source = AWSSpotNotice(imds.url)
    assert source.poll() is None and source.poll() is None
    imds.notice = dict(NOTICE)
    assert source.poll() == NOTICE
    puts = [r for r in imds.requests if r[0] == "PUT"]
    assert len(puts) == 1, "one session token serves every poll until it expires"
    assert puts[0][2]["x-aws-ec2-metadata-token-ttl-seconds"] == "21600"
    assert all(r[2].get("x-aws-ec2-metadata-token") == imds.tokens[0] for r in imds.requests if r[0] == "GET")


def test_aws_an_expired_token_fails_one_poll_then_a_new_token_is_taken(imds):
    source = AWSSpotNotice(imds.url)
    assert source.poll() is None
    imds.expire_tokens()
    with pytest.raises(urllib.error.HTTPError):
        source.poll()
    imds.notice = dict(NOTICE)
    assert source.poll() == NOTICE
    assert len([r for r in imds.requests if r[0] == "PUT"]) == 2


def test_a_failed_status_call_is_not_a_preemption(imds):
    """HTTP 500s and an unreachable metadata service count as failures, never as a notice;
    the first notice after them is reported once."""
    imds.errors = 3
    notices: list[dict] = []
    watcher = PreemptionWatcher(AWSSpotNotice(imds.url), notices.append, interval=0.01)
    assert [watcher.check() for _ in range(3)] == [None, None, None]
    assert watcher.failures == 3 and not notices
    assert watcher.check() is None and watcher.failures == 0  # answered: no notice
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    assert PreemptionWatcher(AWSSpotNotice(dead, timeout=0.5), notices.append).check() is None
    assert not notices


def test_the_watcher_calls_back_once_with_the_heartbeats_preemption_fields(imds):
    imds.errors = 2
    got: list[dict] = []
    done = threading.Event()
    watcher = PreemptionWatcher(AWSSpotNotice(imds.url), lambda n: (got.append(n), done.set()), interval=0.02)
    thread = watcher.start()
    threading.Event().wait(0.2)
    assert not got, "errors and 404s are not notices"
    imds.notice = dict(NOTICE)
    assert done.wait(10)
    thread.join(5)
    assert not thread.is_alive(), "the watcher stops after the first notice"
    assert len(got) == 1
    assert got[0]["source"] == "aws" and got[0]["action"] == "terminate" and got[0]["time"] == NOTICE["time"]
    assert got[0]["notice_at"].endswith("+00:00")


def test_ibm_a_running_instance_is_no_notice_and_a_preempted_one_is(ibm_metadata):
    source = IBMInstanceStatus(ibm_metadata.url, "2025-08-26")
    assert source.poll() is None
    ibm_metadata.instance_errors = 1
    assert PreemptionWatcher(source, lambda n: None).check() is None  # a failed call: not preempted
    ibm_metadata.instance.update(
        status="stopping",
        status_reasons=[{"code": "stopped_by_preemption", "message": "The instance was preempted"}],
    )
    assert source.poll() == {"action": "delete", "time": None}
    assert len(ibm_metadata.identity_tokens) == 1, "one identity token serves the polls until it expires"
    flavors = [r[2].get("Metadata-Flavor") for r in ibm_metadata.requests if r[0] == "PUT"]
    assert flavors == ["ibm"]


def test_local_the_notice_file(tmp_path):
    source = LocalNoticeFile(tmp_path / "preempt-notice.json")
    assert source.poll() is None
    (tmp_path / "preempt-notice.json").write_text(json.dumps({"action": "terminate", "time": "t"}))
    assert source.poll() == {"action": "terminate", "time": "t"}


def test_the_source_comes_from_the_stack_else_from_the_vms_identity_kind():
    assert watch_config({"preemption": {"source": "aws"}}) == {"source": "aws"}
    identity = {"kind": "vpc-trusted-profile", "metadata_url": "http://169.254.169.254", "metadata_version": "2025-08-26"}
    assert watch_config({"identity": identity}) == {
        "source": "ibm",
        "metadata_url": "http://169.254.169.254",
        "metadata_version": "2025-08-26",
    }
    assert watch_config({"identity": None}) is None
    assert isinstance(notice_source({"source": "aws"}), AWSSpotNotice)
    assert notice_source(None) is None
    with pytest.raises(ValueError, match="preemption.source 'gcp'"):
        notice_source({"source": "gcp"})
    with pytest.raises(ValueError, match="notice_file"):
        notice_source({"source": "local"})


def test_a_preempted_heartbeat_carries_its_state_phase_and_notice_on_the_wire():
    notice = {"notice_at": "2026-12-07T08:00:00+00:00", "source": "aws", "action": "terminate"}
    beat = Heartbeat(
        run_id="r-1", worker=0, at="t", state=VMState.PREEMPTED, phases={VMPhase.PREEMPTED.value: notice["notice_at"]}
    )
    beat.services["preemption"] = notice
    raw = json.loads(beat.to_json())
    assert raw["state"] == "preempted" and raw["phases"]["preempted"] == notice["notice_at"]
    assert raw["preemption"] == notice
    back = Heartbeat.from_json(beat.to_json())
    assert back.state is VMState.PREEMPTED and preemption_of(back) == notice
    assert preemption_of(Heartbeat(run_id="r-1", worker=0, at="t")) is None
