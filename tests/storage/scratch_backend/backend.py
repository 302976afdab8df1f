"""The scratch store: the localhost backend's files under another root, with its own name."""

from __future__ import annotations

from ephemera.storage.base import StorageTraits
from ephemera.storage.localhost.backend import LocalhostStorage
from tests.storage.scratch_backend.config import ScratchSection


class ScratchStorage(LocalhostStorage):
    backend = "scratch"
    traits = StorageTraits(conditional_put=True, paged_listing=False, same_host=True, fs_events=False, buckets_on_demand=True)

    @classmethod
    def from_config(cls, config) -> "ScratchStorage":
        return cls(config.section(ScratchSection).path)
