"""Run bundles in the state bucket: published once per content hash, found by it.

A bundle is stored as ``ephemera/bundles/<sha256>.tar.gz`` next to its manifest
``ephemera/bundles/<sha256>.json`` (what it holds, its size and key), so an action can
name a bundle without reading the archive. Two ways a run gets its bundle:

- **packed at apply** (the default on a workstation): ``apply`` packs
  ``workload.source`` with Ephemera's wheel built from the installation it runs in,
  and publishes it (an equal bundle already there is reused);
- **published beforehand** (``workload.bundle: <sha256>``): a deployed action has no
  workload folder and no installed distribution to build a wheel from, so
  ``ephemera deploy`` (or ``ephemera bundle publish``) publishes the bundle from the
  operator's machine and binds its hash into the deployed config; ``apply`` then
  only checks that it is there.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ephemera import layout
from ephemera.assembly import load_config
from ephemera.bundle.lock import needs_lock
from ephemera.bundle.pack import Bundle, house_manifest, pack, read_bundle
from ephemera.errors import ConfigError, NoSuchKeyError
from ephemera.runkeys import bind_signing_key
from ephemera.storage.base import Storage

MANIFEST_FORMAT = 1
PUBLISH_FIX = "publish it to this state bucket with `ephemera bundle publish` (ephemera deploy does it), or unset workload.bundle"


@dataclass(frozen=True)
class BundleRef:
    """The bundle a run's VMs install, as the run record keeps it."""

    key: str  # its key in the state bucket
    sha256: str  # content hash of the archive
    size: int  # bytes
    wheel: str  # Ephemera's wheel inside it
    requirements: list = field(default_factory=list)  # the workload's declared requirements
    source_files: int = 0  # files of workload.source it carries
    reused: bool = False  # it was in the bucket already (published by a deploy or an earlier run)
    locked: bool = False  # it carries the hashed lock a cloud VM installs (ephemera.bundle.lock)
    wheelhouse: dict | None = None  # {key, sha256, size} of the wheels its lock pins (wheelhouse.lock, requirements.lock)
    image: str | None = None  # the prepared image the run's VMs start from (ephemera.bundle.image), None: stock
    lock_sha256: str | None = None  # SHA-256 of its requirements.lock: what cloud runs match prepared images on

    @property
    def wheelhouse_sha256(self) -> str | None:
        return self.wheelhouse["sha256"] if self.wheelhouse else None

    def to_dict(self) -> dict:
        return asdict(self)


def _wheelhouse(manifest: dict) -> dict | None:
    house = house_manifest(manifest)
    if not house:
        return None
    return {"key": layout.wheelhouse_key(house["sha256"]), "sha256": house["sha256"], "size": house["size"]}


def _ref(bundle_key: str, sha256: str, size: int, manifest: dict, reused: bool) -> BundleRef:
    return BundleRef(
        key=bundle_key,
        sha256=sha256,
        size=size,
        wheel=manifest["wheel"],
        requirements=list(manifest["requirements"]),
        source_files=len(manifest["source_files"]),
        reused=reused,
        locked=bool(manifest.get("lock")),
        wheelhouse=_wheelhouse(manifest),
        lock_sha256=manifest.get("lock_sha256"),
    )


def _put_once(storage: Storage, bucket: str, key: str, path: Path, size: int) -> bool:
    """Store the file at ``key`` unless an equal one (same size, under its content hash) is there; whether it was."""
    try:
        if storage.head(bucket, key).size == size:
            return True
    except NoSuchKeyError:
        pass
    storage.put(bucket, key, path.read_bytes())
    return False


def publish(storage: Storage, bucket: str, bundle: Bundle) -> BundleRef:
    """Store the bundle and its manifest under its hash unless an equal one is there already.

    The wheelhouse (once per its own content hash) and the archive are written before the
    manifest, so a manifest names a complete bundle."""
    key = layout.bundle_key(bundle.sha256)
    house = _wheelhouse(bundle.manifest)
    if house is not None:
        if bundle.wheelhouse is None:
            raise ConfigError(
                "bundle",
                f"bundle {bundle.sha256[:12]}... names a wheelhouse and none came with it",
                "pack it again (`ephemera bundle pack`), keeping the files it writes together",
            )
        _put_once(storage, bucket, house["key"], bundle.wheelhouse, house["size"])
    reused = _put_once(storage, bucket, key, bundle.path, bundle.size)
    document = {"format": MANIFEST_FORMAT, "key": key, "sha256": bundle.sha256, "size": bundle.size, "manifest": bundle.manifest}
    storage.put(bucket, layout.bundle_manifest_key(bundle.sha256), json.dumps(document, sort_keys=True).encode())
    return _ref(key, bundle.sha256, bundle.size, bundle.manifest, reused)


def stored(storage: Storage, bucket: str, sha256: str) -> BundleRef:
    """The published bundle ``sha256``; ConfigError naming ``workload.bundle`` if it is not
    (completely) in the state bucket."""
    try:
        document = json.loads(storage.get(bucket, layout.bundle_manifest_key(sha256)))
        size = storage.head(bucket, layout.bundle_key(sha256)).size
    except NoSuchKeyError:
        raise ConfigError(
            "workload.bundle", f"bundle {sha256[:12]}... is not in the state bucket '{bucket}'", PUBLISH_FIX
        ) from None
    except ValueError:
        document = None
    manifest = document.get("manifest") if isinstance(document, dict) else None
    if not isinstance(manifest, dict) or not {"wheel", "requirements", "source_files"} <= set(manifest):
        raise ConfigError("workload.bundle", f"the manifest of bundle {sha256[:12]}... is not one Ephemera wrote", PUBLISH_FIX)
    if size != document.get("size"):
        raise ConfigError(
            "workload.bundle",
            f"bundle {sha256[:12]}... holds {size} bytes, its manifest says {document.get('size')}",
            PUBLISH_FIX,
        )
    house = _wheelhouse(manifest)
    try:
        complete = house is None or storage.head(bucket, house["key"]).size == house["size"]
    except NoSuchKeyError:
        complete = False
    if not complete:
        raise ConfigError(
            "workload.bundle",
            f"the wheelhouse of bundle {sha256[:12]}... is not (complete) in the state bucket '{bucket}'",
            PUBLISH_FIX,
        )
    return _ref(layout.bundle_key(sha256), sha256, size, manifest, True)


def run_bundle(config, storage: Storage) -> BundleRef:
    """The bundle for a run of ``config``: the published one it names, or one packed now."""
    sha256 = config.workload.bundle
    ref = stored(storage, config.state_bucket, sha256) if sha256 else publish_config_bundle(config, storage)
    if needs_lock(config) and not ref.locked:  # its VMs would refuse it at boot: say so before anything is applied
        raise ConfigError(
            "workload.bundle",
            f"bundle {ref.sha256[:12]}... carries no hashed lock, and this stack's VMs install only locked packages",
            "pack and publish it again with this version of Ephemera (`ephemera bundle publish`, or `ephemera deploy`)",
        )
    return ref


def bound_config(config, sha256: str, requirements: list[str]):
    """``config`` as deployed: ``workload.bundle`` names the published bundle, the
    workload's source and requirements-file paths (of the operator's machine) are
    replaced by what the bundle carries, and ``security.signing_key`` is set (from this
    machine's home if the config has none)."""
    data = config.to_dict(redact=False)
    data["workload"].update(bundle=sha256, source=None, requirements=list(requirements))
    bind_signing_key(data, config)  # deployed actions derive the same run keys as this machine
    return load_config(data)


def publish_config_bundle(config, storage: Storage, archive: str | Path | None = None) -> BundleRef:
    """Publish the bundle of ``config`` (packed now, or the archive ``ephemera bundle pack``
    wrote) to its state bucket: what a deploy binds as ``workload.bundle``."""
    bundle = read_bundle(archive) if archive is not None else pack(config, config.home / "bundles")
    return publish(storage, config.state_bucket, bundle)
