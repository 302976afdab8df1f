"""Finding 17: with DEBUG logging on, the IBM SDK's logging broke COS writes.

ibm-cloud-sdk-core's ``BaseService.__init__`` turns on ``http.client`` wire debugging
for the whole process when its logger is enabled for DEBUG
(``HTTPConnection.debuglevel = 1``) and replaces ``http.client.print`` with
``lambda *args: logger.debug(... " ".join(args))``. http.client calls ``print("headers:",
skipped_headers)`` with a *list* after a ``100 Continue`` reply, which ibm-cos-sdk asks
for on every PutObject (``Expect: 100-continue``): the join raises ``TypeError`` inside
the COS client, so once the Schematics client exists every COS write fails. An apply
then started Schematics and could not record it: a run left APPLYING with no activity,
holding the workspace lock."""

from __future__ import annotations

import http.client
import logging

import pytest

from ephemera.model.ledger import Ledger
from ephemera.model.runs import RunState as S
from ephemera.secrets import Scrubber, install_scrubber
from ephemera.assembly import get_storage
from tests.ibm.conftest import SECRETS

actions_apply = pytest.importorskip("ephemera.actions.apply")


@pytest.fixture
def debug_root(restore_http_debug):
    """The root logger at DEBUG with a handler carrying the scrubber, as an action sets it up."""
    root = logging.getLogger()
    handler = logging.StreamHandler(open("/dev/null", "w"))  # noqa: SIM115 - closed below
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    install_scrubber(Scrubber(SECRETS))
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)
    handler.stream.close()


def test_apply_at_debug_records_its_activity_on_cos(cos_config, schematics, debug_root):
    applied = actions_apply.main({"config": cos_config, "ephemera_kind": "manual"})
    assert "error" not in applied, applied
    assert applied["state"] == "APPLYING"
    storage = get_storage(cos_config)
    record = Ledger(storage, cos_config["storage"]["bucket"]).get(applied["run_id"])
    assert record.state == S.APPLYING and record.last_activity("apply") is not None
    # and the storage keeps working for whatever the process does next
    storage.put(cos_config["storage"]["bucket"], "after/debug", b"still writes")
    assert storage.get(cos_config["storage"]["bucket"], "after/debug") == b"still writes"


def test_the_sdk_leaves_http_client_alone(ibm_config, debug_root):
    from ephemera.assembly import get_engine

    engine = get_engine(ibm_config)
    engine._client()  # builds the SDK's service at DEBUG
    assert http.client.HTTPConnection.debuglevel == 0
    assert "print" not in http.client.__dict__
