"""The runs ledger: one JSON record per run in the state bucket.

Updates go through :meth:`Ledger.update`, which holds a per-run lock so that two
actions never interleave a read-modify-write. Every record is scrubbed of the
config's secret values as it is saved (an error message or a log tail may quote one),
so no caller scrubs a record field itself.

A stored record that is not one Ephemera wrote (not JSON, not an object, a field of
the wrong type, another run's id inside: torn, or planted by someone who can write
the state bucket) is a :class:`RunRecordInvalidError` naming its key, never a
TypeError; :meth:`Ledger.list` skips such records and :meth:`Ledger.scan` returns them.
"""

from __future__ import annotations

import builtins
import json
import logging
from typing import Any, Callable, Iterator

from ephemera import layout
from ephemera.errors import EphemeraError, NoSuchKeyError, RunNotFoundError, RunRecordInvalidError
from ephemera.locking.storage_lock import StorageLock
from ephemera.model.runs import OPEN_STATES, RunRecord, RunState
from ephemera.secrets import Scrubber
from ephemera.storage.base import Storage

log = logging.getLogger(__name__)


class Ledger:
    """Run records in the state bucket."""

    def __init__(
        self,
        storage: Storage,
        bucket: str,
        lock_ttl: float = 120.0,
        scrubber: Scrubber | None = None,
        on_transition: Callable[[RunRecord, RunState], None] | None = None,
    ):
        self.storage = storage
        self.bucket = bucket
        self.lock_ttl = lock_ttl
        self.scrubber = scrubber or Scrubber()  # masks the config's secrets in every record saved
        self.on_transition = on_transition  # called (record as saved, previous state) after an update changed the state

    def _stored(self, record: RunRecord) -> tuple[dict, bytes]:
        """The record as it is written: scrubbed, as a dict and as JSON."""
        data = self.scrubber.scrub_obj(record.to_dict())
        return data, json.dumps(data, indent=1).encode()

    def create(self, record: RunRecord) -> bool:
        """Store a new record; False if a record with that run id already exists."""
        record.version = 1
        _data, body = self._stored(record)
        return self.storage.put_if_absent(self.bucket, layout.run_key(record.run_id), body)

    def get(self, run_id: str) -> RunRecord:
        key = layout.run_key(run_id)
        try:
            data = self.storage.get(self.bucket, key)
        except NoSuchKeyError:
            raise RunNotFoundError(run_id) from None
        return parse_record(key, data, run_id)

    def exists(self, run_id: str) -> bool:
        try:
            self.storage.head(self.bucket, layout.run_key(run_id))
            return True
        except NoSuchKeyError:
            return False

    def save(self, record: RunRecord) -> RunRecord:
        """Write the record; returns it as stored (scrubbed)."""
        record.version += 1
        data, body = self._stored(record)
        self.storage.put(self.bucket, layout.run_key(record.run_id), body)
        return RunRecord.from_dict(data)

    def update(self, run_id: str, change: Callable[[RunRecord], None]) -> RunRecord:
        """Read, apply ``change`` and save, under the run's lock."""
        with StorageLock(self.storage, self.bucket, f"run-{run_id}", ttl=self.lock_ttl):
            record = self.get(run_id)
            previous = record.state
            change(record)
            saved = self.save(record)
        if self.on_transition is not None and saved.state != previous:  # outside the lock: it may take a while
            self.on_transition(saved, previous)
        return saved

    def transition(self, run_id: str, state: RunState, reason: str = "", **fields: Any) -> RunRecord:
        """Move a run to ``state`` (and set any record fields) under its lock."""

        def change(record: RunRecord) -> None:
            record.enter(state, reason)
            for name, value in fields.items():
                setattr(record, name, value)

        return self.update(run_id, change)

    def list(self) -> Iterator[RunRecord]:
        """Every run, oldest first. A record that is not a valid run record is skipped
        with a warning naming its key. A missing state bucket raises NoSuchBucketError:
        it is a misconfiguration (a typo in ``storage.bucket``), never "no runs yet"."""
        records, invalid = self.scan()
        for exc in invalid:
            log.warning("skipping %s", exc.message)
        return iter(records)

    def scan(
        self, wanted: Callable[[str], bool] | None = None
    ) -> tuple[builtins.list[RunRecord], builtins.list[RunRecordInvalidError]]:
        """(every valid run, oldest first; an error for each invalid record); with
        ``wanted``, only the records whose run id it accepts are read."""
        records: builtins.list[RunRecord] = []
        invalid: builtins.list[RunRecordInvalidError] = []
        for info in list(self.storage.list(self.bucket, layout.RUNS)):
            run_id = layout.run_id_of(info.key)
            if run_id is None or (wanted is not None and not wanted(run_id)):
                continue
            try:
                records.append(parse_record(info.key, self.storage.get(self.bucket, info.key), run_id))
            except NoSuchKeyError:  # deleted since the listing
                continue
            except RunRecordInvalidError as exc:
                invalid.append(exc)
        return sorted(records, key=lambda r: (r.created_at, r.run_id)), invalid

    def open_runs(self, workspace: str | None = None) -> builtins.list[RunRecord]:  # ``list`` is the method here
        return [r for r in self.list() if r.state in OPEN_STATES and (workspace is None or r.workspace == workspace)]


def parse_record(key: str, data: bytes, run_id: str) -> RunRecord:
    """The record stored at ``key`` for ``run_id``; RunRecordInvalidError if it is not one."""
    try:
        record = RunRecord.from_dict(json.loads(data))
    except (ValueError, TypeError, AttributeError, KeyError, EphemeraError) as exc:
        problem = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        raise RunRecordInvalidError(key, f"not a valid run record ({problem})") from None
    if record.run_id != run_id:
        raise RunRecordInvalidError(key, f"it holds the record of another run ({record.run_id!r})")
    return record
