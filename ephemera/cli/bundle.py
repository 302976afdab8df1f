"""``ephemera bundle pack|publish``: the run bundle, made and published by hand.

    ephemera bundle pack [--out DIR]      pack the config's bundle into DIR; print its hash and file
    ephemera bundle publish [ARCHIVE]     publish it (packed now, or the ARCHIVE pack wrote) to the
      [--expect SHA256]                   state bucket; print the hash to set as workload.bundle

``ephemera deploy`` publishes the bundle itself; these are for a pinned bundle
(``workload.bundle``) and for the plan of ``ephemera deploy --dry-run``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from ephemera.bundle.pack import pack, read_bundle
from ephemera.bundle.preflight import check_workload
from ephemera.bundle.store import publish_config_bundle
from ephemera.errors import ConfigError
from ephemera.storage import get_storage


def cmd_pack(config, out_dir: str | None, out: TextIO) -> int:
    check_workload(config, packing=True)  # the pre-apply check: never pack a bundle an apply would refuse
    bundle = pack(config, Path(out_dir) if out_dir else config.home / "bundles")
    print(f"{bundle.sha256}  {bundle.path}  ({bundle.size} bytes, {len(bundle.manifest['source_files'])} source files)", file=out)
    if bundle.wheelhouse is not None:  # publish reads it from beside the archive
        house = bundle.house_manifest or {"files": []}
        print(f"# with its wheelhouse {bundle.wheelhouse} ({', '.join(house['files'])}): keep the two together", file=out)
    return 0


def cmd_publish(config, archive: str | None, out: TextIO, expect: str | None = None) -> int:
    """Publish; with ``expect``, only a bundle of that hash (what a deploy plan bound)."""
    if expect and archive is not None and read_bundle(archive).sha256 != expect:
        raise ConfigError(
            "bundle",
            f"'{archive}' is not the bundle {expect[:12]}... the deployed config names",
            "run the deploy's dry run again: it packs and binds the bundle anew",
        )
    if archive is None:
        check_workload(config, packing=True)  # packed now: the same check as `bundle pack`
    ref = publish_config_bundle(config, get_storage(config), archive)
    how = "already there" if ref.reused else "uploaded"
    print(f"# bundle {how}: {config.state_bucket}/{ref.key} ({ref.size} bytes); set workload.bundle to it", file=out)
    print(ref.sha256, file=out)
    return 0
