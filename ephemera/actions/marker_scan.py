"""The marker scan: object-write events for completion markers, found by listing.

Where no object-storage feed exists (Apache OpenWhisk has none), an ``object_write``
trigger on completion markers is deployed as an alarm that invokes its rule's action
every scan interval with ``ephemera_scan: {bucket, prefix, suffix}`` (the trigger's
filters). The action looks, for every open run of the ledger, for the run's marker
where the run's job writes it (two HEAD requests per open run, however many other
objects the bucket holds) and handles each marker that matches the filters as the
object-write event a feed would have delivered. It is the reaper's rescue of markers
whose event was lost, made a trigger source of its own; a marker is handled within one
scan interval of being written. Handling a marker twice is harmless (the destroy of a
run already destroyed is ignored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from ephemera.context import Context
from ephemera.errors import NoSuchKeyError, ParamError
from ephemera.model import marker as markers
from ephemera.model.runs import RunState

SCAN_PARAM = "ephemera_scan"
# states in which a run's workload may still write its marker
SCANNED_STATES = frozenset({RunState.APPLYING, RunState.RUNNING})


@dataclass(frozen=True)
class ScanFilter:
    """The object_write trigger a scan stands in for."""

    bucket: str  # the watched bucket
    prefix: str  # only keys under this prefix
    suffixes: tuple[str, ...]  # only keys ending in one of these (empty: any)

    def matches(self, bucket: str, key: str) -> bool:
        return bucket == self.bucket and key.startswith(self.prefix) and (not self.suffixes or key.endswith(self.suffixes))


def scan_filter(value: Any) -> ScanFilter:
    """The ``ephemera_scan`` parameter as a filter; ParamError naming the bad field."""
    if not isinstance(value, dict):
        raise ParamError(
            SCAN_PARAM, f"expected an object, got {type(value).__name__}", "deploy the scan with functions-create.sh"
        )
    bucket, prefix, suffix = value.get("bucket"), value.get("prefix", ""), value.get("suffix", [])
    if not isinstance(bucket, str) or not bucket:
        raise ParamError(f"{SCAN_PARAM}.bucket", "missing or not a non-empty string", "name the watched bucket")
    if not isinstance(prefix, str):
        raise ParamError(
            f"{SCAN_PARAM}.prefix", f"expected a string, got {type(prefix).__name__}", "a key prefix such as 'outputs/'"
        )
    suffixes = [suffix] if isinstance(suffix, str) else suffix
    if not isinstance(suffixes, list) or not all(isinstance(s, str) and s for s in suffixes):
        raise ParamError(f"{SCAN_PARAM}.suffix", "expected a string or a list of non-empty strings", "e.g. ['_SUCCESS.json']")
    return ScanFilter(bucket, prefix, tuple(suffixes))


def marker_writes(ctx: Context, scan: ScanFilter, trigger: str | None = None) -> Iterator[dict]:
    """Object-write event params for each open run's marker that the filter matches,
    oldest run first (the params the local watcher would emit for the write)."""
    for run in ctx.ledger.open_runs():
        if run.state not in SCANNED_STATES or run.job is None:
            continue
        for success in (True, False):
            key = markers.key(run.job.output_prefix, success)
            if not scan.matches(run.job.output_bucket, key):
                continue
            try:
                info = ctx.storage.head(run.job.output_bucket, key)
            except NoSuchKeyError:
                continue
            yield {
                "ephemera_kind": "object_write",
                "ephemera_trigger": trigger,
                "bucket": run.job.output_bucket,
                "key": info.key,
                "etag": info.etag,
                "size": info.size,
                "ephemera_time": info.last_modified.isoformat(),
            }
            break  # one marker per run: the first one written wins, as with the feed's first event
