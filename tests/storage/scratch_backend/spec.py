"""What the scratch backend tells Ephemera: its section, a load-time check, and (by the
spec's defaults) its VMs' access (path plain, token delivered once) and a Lithops
section with the same keys."""

from __future__ import annotations

from ephemera.errors import ConfigError
from ephemera.storage.spec import StorageBackendSpec
from tests.storage.scratch_backend.config import ScratchSection


class ScratchSpec(StorageBackendSpec):
    name = "scratch"
    sections = {"scratch": ScratchSection}
    storage_class = "tests.storage.scratch_backend.backend:ScratchStorage"
    url_schemes = ("scr",)

    def check(self, config):
        if not config.section(ScratchSection).path:
            raise ConfigError("scratch.path", "missing", "set the directory the buckets live in")
