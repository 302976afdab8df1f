"""What the scratch backend tells Ephemera: its section, a load-time check, its VMs'
variables, and (by the spec's defaults) a Lithops section with the same keys."""

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
        if not config["scratch"]["path"]:
            raise ConfigError("scratch.path", "missing", "set the directory the buckets live in")

    def vm_variables(self, config) -> tuple[dict, dict]:
        section = config["scratch"]
        secure = {"scratch_token": section["token"]} if section["token"] else {}
        return {"scratch_path": section["path"]}, secure
